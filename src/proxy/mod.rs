//! The OpenAI-compatible `/v1/*` gateway: access keys are checked in memory, the request body is read
//! once, and the request goes to `{upstream}/v1/*` on a key picked from the in-memory pool, failing
//! over to other keys until the first byte reaches the caller. The hot path reads no database: what
//! it learns goes to the pool's buffer, which the writer task drains in batches.

pub mod auth;
pub mod billing;
pub mod cors;
pub mod limits;
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

use crate::domain::clock::Clock;
use crate::domain::key_state::Evidence;
use crate::domain::logs::NO_KEY_ERROR;
use crate::domain::proxy::{AttemptFailure, is_failure, safe_v1_path};
use crate::domain::reason::Reason;
use crate::domain::settings::next_day_boundary;
use crate::domain::upstream_error::Meaning;
use crate::pool::KeyPool;
use crate::pool::{KeySlot, Verdict, Want};
use metrics::Outcome;
use relay::{EndCheck, InflightGuard, Ledger, Relay};
use upstream::UpstreamClient;

/// What the gateway needs of the app, and nothing more: the routable keys and what they learn (the
/// pool), the access keys, the counters, the models cache and the clock. Built once by `startup`
/// from the same objects the rest of the app holds; the hot path reads no database.
pub struct Gateway {
    pub pool: Arc<KeyPool>,
    pub access_keys: Arc<auth::AccessKeyIndex>,
    pub metrics: Arc<metrics::ProxyMetrics>,
    pub models_cache: Arc<billing::ModelsCache>,
    pub clock: Clock,
}

impl Gateway {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// Largest failure answer read to classify it.
const FAILURE_BODY_LIMIT: usize = 1024 * 1024;
/// Answers of known length up to this size are read whole and sent in one piece; larger ones and
/// streams pass through chunk by chunk.
const WHOLE_BODY_LIMIT: u64 = 64 * 1024;

/// An error in OpenAI's JSON shape: `{"error":{"message","type","code"}}`.
pub fn openai_error(status: StatusCode, message: &str, kind: &str, code: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": { "message": message, "type": kind, "code": code } }))
}

pub(crate) fn with_retry_after(mut res: HttpResponse, secs: i64) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// A delivered upstream answer, its body not read yet.
type UpstreamResponse = awc::ClientResponse<actix_web::dev::Decompress<actix_web::dev::Payload>>;

/// Keys one request may try at most, whatever they answer (definitive answers do not use up
/// `max_attempts`; this bounds them).
pub const MAX_KEYS_PER_REQUEST: usize = 20;

/// Any method on `/v1/*` without a route of its own.
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<Gateway>,
    client: web::Data<UpstreamClient>,
) -> HttpResponse {
    let runtime = state.pool.runtime();
    if req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return cors::preflight(&req, &runtime.proxy().cors_origins);
    }
    let res = handle(&req, payload, &state, &client).await;
    with_cors(&req, &state, res)
}

fn with_cors(req: &HttpRequest, state: &Gateway, mut res: HttpResponse) -> HttpResponse {
    cors::decorate(req, &state.pool.runtime().proxy().cors_origins, &mut res);
    res
}

/// `GET /v1/models`: the upstream's model list, kept for a minute (chat clients ask often).
pub async fn get_models(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<Gateway>,
    client: web::Data<UpstreamClient>,
) -> HttpResponse {
    // A hit needs a valid access key; a miss is forwarded like any request (and checked there).
    let caller = authenticate(&req, &state);
    if req.query_string().is_empty()
        && let Some(c) = &caller
        && c.limits.refuses_key(state.now_ms()).is_none()
        && let Some(res) = state.models_cache.get(state.now_ms())
    {
        let mut ledger = Ledger::new(&req, &state);
        ledger.access_key_id = Some(c.id);
        ledger.close(200, Outcome::Ok, None, None);
        return with_cors(&req, &state, billing::only_allowed_models(res, c, &state).await);
    }
    let res = handle(&req, payload, &state, &client).await;
    let res = match &caller {
        Some(c) if res.status() == StatusCode::OK => billing::only_allowed_models(res, c, &state).await,
        _ => res,
    };
    with_cors(&req, &state, res)
}

/// `GET /v1/dashboard/billing/subscription`: the pool's credit, for chat clients that show it.
pub async fn get_billing_subscription(req: HttpRequest, state: web::Data<Gateway>) -> HttpResponse {
    answer_locally(&req, &state, || billing::subscription(&state.pool))
}

/// `GET /v1/user/info`: the pool's balance in SiliconFlow's shape, for chat clients that show it.
pub async fn get_user_info(req: HttpRequest, state: web::Data<Gateway>) -> HttpResponse {
    answer_locally(&req, &state, || billing::user_info(&state.pool))
}

/// `GET /v1/dashboard/billing/usage`.
pub async fn get_billing_usage(req: HttpRequest, state: web::Data<Gateway>) -> HttpResponse {
    answer_locally(&req, &state, billing::usage)
}

/// A `/v1` request keypool answers itself, for a valid access key.
fn answer_locally(
    req: &HttpRequest,
    state: &web::Data<Gateway>,
    answer: impl FnOnce() -> HttpResponse,
) -> HttpResponse {
    let mut ledger = Ledger::new(req, state);
    let caller = authenticate(req, state);
    ledger.access_key_id = caller.as_ref().map(|c| c.id);
    let now = state.now_ms();
    let res = match caller {
        Some(c) => match c.limits.refuses_key(now) {
            None => {
                ledger.close(200, Outcome::Ok, None, None);
                answer()
            }
            Some(refusal) => refused_by_limits(&ledger, &c, &refusal, state, now),
        },
        None => refused_access(&ledger, req),
    };
    with_cors(req, state, res)
}

/// The access key of the request, checked in memory; `None` when missing or unknown.
fn authenticate(req: &HttpRequest, state: &Gateway) -> Option<Arc<auth::Client>> {
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = header.and_then(crate::domain::access_token::from_authorization)?;
    state.access_keys.authenticate(token)
}

/// The answer to a request its access key's limits refuse (recorded as the caller's error).
fn refused_by_limits(
    ledger: &Ledger,
    client: &auth::Client,
    refusal: &crate::domain::access_limits::Refusal,
    state: &Gateway,
    now: i64,
) -> HttpResponse {
    let refused = limits::refuse(client, refusal, state.pool.runtime().proxy(), now);
    ledger.close(refused.response.status().as_u16(), Outcome::CallerError, None, Some(refused.reason));
    refused.response
}

/// The 401 for a request [`authenticate`] refused (recorded).
fn refused_access(ledger: &Ledger, req: &HttpRequest) -> HttpResponse {
    let (message, code, why) = if req.headers().contains_key(header::AUTHORIZATION) {
        ("Unknown or revoked access key.", "invalid_api_key", "unknown access key")
    } else {
        (
            "Missing access key: send `Authorization: Bearer <access key>` (create one in keypool's settings).",
            "missing_api_key",
            "missing access key",
        )
    };
    let res = openai_error(StatusCode::UNAUTHORIZED, message, "invalid_request_error", code);
    ledger.close(401, Outcome::CallerError, None, Some(why.to_owned()));
    res
}

/// 400 for a path keypool will not forward (dot segments, control characters).
fn refused_path(ledger: &Ledger) -> HttpResponse {
    let res = openai_error(
        StatusCode::BAD_REQUEST,
        "The request path has `.` or `..` segments (perhaps percent-encoded) or control characters; \
         keypool forwards only plain `/v1/...` paths.",
        "invalid_request_error",
        "invalid_path",
    );
    ledger.close(400, Outcome::CallerError, None, Some("unsafe path".to_owned()));
    res
}

/// 413, 408 or 400 for a request body that could not be taken.
fn refused_body(ledger: &Ledger, e: BodyError, max_body_mb: u32) -> HttpResponse {
    let (status, message, code, why) = match e {
        BodyError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than keypool's limit of {max_body_mb} MB (setting max_body_mb)."),
            "body_too_large",
            "body too large",
        ),
        BodyError::TooSlow => (
            StatusCode::REQUEST_TIMEOUT,
            "The request body arrived too slowly (keypool needs it to keep arriving: \
             KEYPOOL_BODY_GRACE_S, KEYPOOL_BODY_MIN_RATE); the connection is closed."
                .to_owned(),
            "body_too_slow",
            "body too slow",
        ),
        BodyError::Broken(e) => (
            StatusCode::BAD_REQUEST,
            format!("The request body could not be read: {e}"),
            "unreadable_body",
            "unreadable body",
        ),
    };
    let res = openai_error(status, &message, "invalid_request_error", code);
    ledger.close(res.status().as_u16(), Outcome::CallerError, None, Some(why.to_owned()));
    res
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &web::Data<Gateway>,
    client: &UpstreamClient,
) -> HttpResponse {
    let mut ledger = Ledger::new(req, state);
    let Some(caller) = authenticate(req, state) else {
        return refused_access(&ledger, req);
    };
    ledger.access_key_id = Some(caller.id);
    if let Some(refusal) = caller.limits.refuses_key(ledger.at) {
        return refused_by_limits(&ledger, &caller, &refusal, state, ledger.at);
    }
    // The raw path (`req.uri().path()`, which is also `req.path()`: actix decodes only for routing) is
    // what goes upstream, so it is checked as received: after the access key (a stranger gets the same
    // 401 whatever the path), before the body is read or any key is picked.
    if !safe_v1_path(req.uri().path()) {
        return refused_path(&ledger);
    }
    let runtime = state.pool.runtime();
    let settings = runtime.proxy();
    let limit = settings.max_body_mb as usize * 1024 * 1024;
    let body = match read_body(req, payload, limit).await {
        Ok(b) => b,
        Err(e) => return refused_body(&ledger, e, settings.max_body_mb),
    };
    ledger.model = model_of(&body);
    let needs_model = !matches!(*req.method(), Method::GET | Method::HEAD);
    let now = state.now_ms();
    if let Err(refusal) = limits::admit(&caller, ledger.model.as_deref(), needs_model, settings, now) {
        return refused_by_limits(&ledger, &caller, &refusal, state, now);
    }
    ledger.quota = caller.quota.clone();
    let model = ledger.model.clone().unwrap_or_default();
    let want = Want { model: &model, free: !model.is_empty() && settings.is_free_model(&model) };
    match attempts(req, &body, want, state, client, &mut ledger).await {
        Ok((res, guard, upstream_time)) => {
            state.metrics.overhead.observe(ledger.started.elapsed().saturating_sub(upstream_time));
            deliver(req, res, guard, ledger, state).await
        }
        Err(exhausted) => exhausted.respond(want, state, ledger),
    }
}

/// How the attempts ended when nothing was delivered.
struct Exhausted {
    tried: Vec<i64>,
    last: Option<Failure>,
    upstream_time: Duration,
    started: Instant,
}

/// The attempt loop: keys picked from memory, failing over until an answer can be delivered. Answers
/// definitive about a key or a (key, model) pair take that key or pair out and do not use up
/// `max_attempts`, which counts transient failures (5xx, timeouts, connection errors). So a request
/// takes at most [`MAX_KEYS_PER_REQUEST`] keys and `max_attempts` first-byte timeouts.
async fn attempts(
    req: &HttpRequest,
    body: &Bytes,
    want: Want<'_>,
    state: &web::Data<Gateway>,
    client: &UpstreamClient,
    ledger: &mut Ledger,
) -> Result<(UpstreamResponse, InflightGuard, Duration), Exhausted> {
    let runtime = state.pool.runtime();
    let settings = runtime.proxy();
    let model = (!want.model.is_empty()).then_some(want.model);
    let incident = state.pool.incident.active_for(model, ledger.at);
    let transient_allowed = if incident { 1 } else { settings.max_attempts.max(1) };
    let target = Target {
        url: match req.uri().query() {
            Some(q) => format!("{}{}?{q}", runtime.upstream, req.path()),
            None => format!("{}{}", runtime.upstream, req.path()),
        },
        awc: client.get(Duration::from_secs(settings.connect_timeout_s.into())),
        first_byte_timeout_s: settings.first_byte_timeout_s,
        idle: Duration::from_secs(settings.idle_timeout_s.into()),
        listed: upstream::connection_listed(req.headers()),
    };
    let mut out = Exhausted { tried: Vec::new(), last: None, upstream_time: Duration::ZERO, started: ledger.started };
    let mut transient_used = 0u32;
    while out.tried.len() < MAX_KEYS_PER_REQUEST && transient_used < transient_allowed {
        let at = state.now_ms();
        let Some(slot) = state.pool.pick(want, &out.tried, at) else { break };
        out.tried.push(slot.id);
        ledger.attempts = out.tried.len() as u32;
        let guard = InflightGuard::new(slot.clone());
        let sent = Instant::now();
        let result = target.send(req, body, &slot.key).await;
        let waited = sent.elapsed();
        out.upstream_time += waited;
        state.metrics.upstream_latency.observe(waited);
        match target.judge(req, result).await {
            Ok(res) => return Ok((res, guard, out.upstream_time)),
            Err(failure) => {
                if learn(state, &slot, &failure.class, model, incident) {
                    transient_used += 1;
                }
                out.last = Some(failure);
            }
        }
    }
    Err(out)
}

/// Where and how a request's attempts go upstream.
struct Target {
    url: String,
    awc: awc::Client,
    first_byte_timeout_s: u32,
    idle: Duration,
    /// Headers the caller's `Connection` header lists (hop-by-hop: never forwarded).
    listed: Vec<String>,
}

impl Target {
    /// Sends the request on one key: the allow-listed headers, the key, the body.
    async fn send(
        &self,
        req: &HttpRequest,
        body: &Bytes,
        key: &str,
    ) -> Result<UpstreamResponse, awc::error::SendRequestError> {
        let first_byte = Duration::from_secs(self.first_byte_timeout_s.into());
        let mut up = self.awc.request(req.method().clone(), self.url.as_str()).no_decompress().timeout(first_byte);
        for (name, value) in req.headers() {
            if upstream::forward_request_header(name) && !self.listed.iter().any(|l| l == name.as_str()) {
                up = up.append_header((name.clone(), value.clone()));
            }
        }
        up = up.insert_header((header::AUTHORIZATION, format!("Bearer {key}")));
        up.send_body(body.clone()).await
    }

    /// An answer to deliver, or why the attempt failed (a failure's body is read, within limits).
    async fn judge(
        &self,
        req: &HttpRequest,
        result: Result<UpstreamResponse, awc::error::SendRequestError>,
    ) -> Result<UpstreamResponse, Failure> {
        match result {
            Err(e) => {
                let (message, reason, timeout) = match e {
                    awc::error::SendRequestError::Timeout => (
                        format!("no answer within {} s (first_byte_timeout_s)", self.first_byte_timeout_s),
                        Reason::Timeout,
                        true,
                    ),
                    awc::error::SendRequestError::Connect(c) => (
                        format!("cannot connect to the upstream: {c}"),
                        Reason::Connection { detail: c.to_string() },
                        false,
                    ),
                    other => (
                        format!("upstream request failed: {other}"),
                        Reason::Connection { detail: other.to_string() },
                        false,
                    ),
                };
                Err(Failure { class: AttemptFailure::transient(message, reason), answer: None, timeout })
            }
            // A body that ends at connection close reads as empty in awc (actix/actix-web#2287): never
            // relay it, nor trust what it would say; another key may frame its answer.
            Ok(res)
                if upstream::close_delimited(
                    res.status(),
                    res.version(),
                    res.headers(),
                    req.method() == Method::HEAD,
                ) =>
            {
                let class = AttemptFailure::transient(
                    upstream::CLOSE_DELIMITED_MESSAGE.to_owned(),
                    Reason::Unreadable { detail: upstream::CLOSE_DELIMITED_MESSAGE.to_owned() },
                );
                Err(Failure { class, answer: None, timeout: false })
            }
            Ok(res) if is_failure(res.status().as_u16()) => {
                let retry_after =
                    res.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let (status, headers) = (res.status(), res.headers().clone());
                let failure_body = res.timeout(self.idle).body().limit(FAILURE_BODY_LIMIT).await.unwrap_or_default();
                let class = AttemptFailure::from_answer(status.as_u16(), retry_after.as_deref(), &failure_body);
                Err(Failure { class, answer: Some(Answer { status, headers, body: failure_body }), timeout: false })
            }
            Ok(res) => Ok(res),
        }
    }
}

/// Passes a delivered answer to the caller: no failover from here on.
async fn deliver(
    req: &HttpRequest,
    res: UpstreamResponse,
    guard: InflightGuard,
    mut ledger: Ledger,
    state: &web::Data<Gateway>,
) -> HttpResponse {
    let model = ledger.model.as_deref().filter(|m| !m.is_empty());
    state.pool.incident.record_success(guard.slot().id, model, state.now_ms());
    let idle = Duration::from_secs(state.pool.runtime().proxy().idle_timeout_s.into());
    ledger.ttfb = Some(ledger.started.elapsed());
    let status = res.status().as_u16();
    let mut out = HttpResponse::build(res.status());
    let upstream_listed = upstream::connection_listed(res.headers());
    for (name, value) in res.headers() {
        if upstream::forward_response_header(name) && !upstream_listed.iter().any(|l| l == name.as_str()) {
            out.append_header((name.clone(), value.clone()));
        }
    }
    let content_type = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let sse = content_type.starts_with("text/event-stream") && !res.headers().contains_key(header::CONTENT_ENCODING);
    let length =
        res.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    out.insert_header(("x-accel-buffering", "no"));
    let cache_models = req.method() == Method::GET && req.path() == "/v1/models" && req.query_string().is_empty();
    let at = ledger.at;
    let stream = Box::pin(res);
    // A small answer of known length is read whole and sent in one piece (fewer writes; and if the
    // upstream breaks off, the caller gets a clean 502 instead of a cut body). The model list too,
    // which chat clients ask for often: it is kept for a minute.
    let small = !sse && length.is_some_and(|n| n <= WHOLE_BODY_LIMIT);
    if small || (cache_models && status == 200) {
        let check = EndCheck { expected_len: length, expect_done: false, json: is_json(&content_type) };
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
            state.models_cache.put(at, &content_type, whole.clone());
        }
        return out.body(whole);
    }
    let check = EndCheck {
        expected_len: length,
        expect_done: status == 200 && req.path().ends_with("/completions"),
        json: is_json(&content_type),
    };
    let relay = Relay::new(stream, idle, sse, status, check, ledger, guard);
    match length {
        Some(n) if !sse => out.body(SizedStream::new(n, relay)),
        _ => out.streaming(relay),
    }
}

impl Exhausted {
    /// The answer when no attempt could be delivered.
    fn respond(self, want: Want<'_>, state: &Gateway, ledger: Ledger) -> HttpResponse {
        let now = state.now_ms();
        let wait = state.pool.next_change().map_or(30, |end| ((end - now + 999) / 1000).clamp(1, 3600));
        let model = if want.model.is_empty() { "this request".to_owned() } else { format!("model {}", want.model) };
        let (res, outcome, key, error) = match self.last {
            None => {
                let res = no_key(
                    format!(
                        "No upstream key can serve {model} right now: every key is invalid, without money, rate-limited \
                     or unchecked. Add or check keys in keypool's admin."
                    ),
                    wait,
                );
                (res, Outcome::NoKey, None, NO_KEY_ERROR.to_owned())
            }
            Some(f) => {
                let message = f.class.message.clone();
                let (res, ours) = failed_answer(f, self.tried.len(), &model, wait);
                // A 503 of ours (no key left for the request) is logged as such: the log page's
                // `no_key` filter finds it by this start.
                let error = if ours { format!("{NO_KEY_ERROR} (last: {message})") } else { message };
                (res, Outcome::UpstreamError, self.tried.last().copied(), error)
            }
        };
        ledger.close(res.status().as_u16(), outcome, key, Some(error));
        state.metrics.overhead.observe(self.started.elapsed().saturating_sub(self.upstream_time));
        res
    }
}

/// keypool's own 503: no key can serve the request now; retry after `retry` seconds.
fn no_key(message: String, retry: i64) -> HttpResponse {
    with_retry_after(
        openai_error(StatusCode::SERVICE_UNAVAILABLE, &message, "service_unavailable", "no_available_key"),
        retry,
    )
}

/// The answer after `attempts` keys failed, the last as `f`, and whether it is keypool's own 503 (no key
/// left for the request) rather than the upstream's answer or a gateway error.
fn failed_answer(f: Failure, attempts: usize, model: &str, wait: i64) -> (HttpResponse, bool) {
    let message = &f.class.message;
    let gateway_error = |status, text: String, code| (openai_error(status, &text, "upstream_error", code), false);
    match (&f.class.meaning, f.answer) {
        (Meaning::RateLimited { .. }, _) if attempts >= MAX_KEYS_PER_REQUEST || f.timeout => (
            no_key(format!("The {attempts} keys tried are all at their limit for {model} (last: {message})."), wait),
            true,
        ),
        (Meaning::RateLimited { .. }, Some(answer)) => (answer.into_response(), false),
        (Meaning::KeyInvalid | Meaning::NoMoney | Meaning::ModelRefused | Meaning::RateLimited { .. }, _) => (
            no_key(
                format!(
                    "The {attempts} upstream key(s) tried could not serve {model} (last: {message}); they are \
                 out of rotation for it and no other key can serve it now."
                ),
                1,
            ),
            true,
        ),
        (_, Some(answer)) => (answer.into_response(), false),
        (_, None) if f.timeout => gateway_error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("The upstream did not answer in time ({message})."),
            "upstream_timeout",
        ),
        (_, None) if message == upstream::CLOSE_DELIMITED_MESSAGE => gateway_error(
            StatusCode::BAD_GATEWAY,
            format!("The upstream's answer could not be relayed: {message}."),
            "upstream_unframed",
        ),
        (_, None) => gateway_error(
            StatusCode::BAD_GATEWAY,
            format!("The upstream could not be reached ({message})."),
            "upstream_unreachable",
        ),
    }
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
    class: AttemptFailure,
    answer: Option<Answer>,
    timeout: bool,
}

/// Counts a failed attempt and applies what it says about the key or the (key, model) pair, through the
/// state machine. Returns whether it uses up one of `max_attempts`: transient failures do, and so does
/// everything during an incident, when failures say nothing about the keys.
fn learn(state: &Gateway, slot: &Arc<KeySlot>, failure: &AttemptFailure, model: Option<&str>, incident: bool) -> bool {
    let now = state.now_ms();
    let runtime = state.pool.runtime();
    let settings = runtime.proxy();
    state.pool.count_attempt(slot.id, true, now);
    state.metrics.retry(failure.cause());
    let mut frozen = incident;
    if failure.is_correlated_kind() {
        let verdict = state.pool.incident.record_failure(
            slot.id,
            model,
            now,
            failure.retry_after_s,
            &failure.reason.encode(),
            runtime.thresholds(),
        );
        if let Verdict::IncidentStarted(keys) = &verdict {
            // Those pairs were taken out on keypool's guess for the incident's failures, not their own.
            state.pool.unblock_guessed(keys, model.unwrap_or_default());
        }
        frozen |= verdict.is_incident();
    }
    let next_day = next_day_boundary(now, settings.upstream_utc_offset_min);
    let evidence = failure.evidence(model, now, settings.cooldown_s, next_day);
    let hinted = failure.retry_after_s.is_some();
    // During an incident only the upstream's own Retry-After takes a pair out.
    let apply = match &evidence {
        Evidence::RateLimited { .. } => !frozen || hinted,
        Evidence::Transient => false,
        _ => true,
    };
    if apply {
        state.pool.apply(slot, &evidence, &failure.reason.encode(), now, hinted);
    }
    if matches!(evidence, Evidence::NoMoney { .. }) {
        state.pool.ask_recheck(slot.id);
    }
    !failure.is_definitive() || frozen
}

enum BodyError {
    TooLarge,
    TooSlow,
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
        let chunk = chunk.map_err(|e| {
            if crate::error::is_too_slow(&e) { BodyError::TooSlow } else { BodyError::Broken(e.to_string()) }
        })?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Whether an answer's content type is JSON (compressed bodies are not read for tokens).
fn is_json(content_type: &str) -> bool {
    content_type.starts_with("application/json")
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
