//! Passing an upstream body to the caller chunk by chunk, with the idle timeout between chunks, and
//! recording how it ended. When the upstream dies mid-stream, an SSE caller gets an `event: error`
//! frame and no `data: [DONE]` (it must be able to tell a truncated answer from a whole one); any
//! other body is cut, so the caller's HTTP client sees an incomplete response.
//!
//! A connection that closes early looks like a clean end to awc, so the relay checks the ends itself:
//! a body with a `Content-Length` must deliver that many bytes, and an OpenAI-style completion stream
//! (`/completions` paths) must have sent `data: [DONE]`, as every such stream does when it is whole.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::web::{self, Bytes};
use futures_util::Stream;

use super::Gateway;
use super::metrics::Outcome;
use crate::domain::tokens::{JsonUsage, SseUsage, TokenUsage};
use crate::domain::usage::RequestLogRow;
use crate::pool::KeySlot;

/// Everything needed to account for one request once it has ended.
pub struct Ledger {
    pub state: web::Data<Gateway>,
    pub started: Instant,
    pub at: i64,
    pub access_key_id: Option<i64>,
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    pub attempts: u32,
    pub ttfb: Option<Duration>,
    /// Tokens of the answer, read from it as it passed.
    pub tokens: Option<TokenUsage>,
    /// Set once the request's end is recorded.
    pub closed: std::cell::Cell<bool>,
    /// The access key's quota counts, when it has quotas: its tokens and cost are added at the end.
    pub quota: Option<Arc<crate::pool::quota::Quota>>,
}

/// The status logged for a caller that went away before the answer (as nginx does).
pub const CLIENT_CLOSED: u16 = 499;

impl Drop for Ledger {
    fn drop(&mut self) {
        // The handler was dropped before an answer: the caller went away.
        if !self.closed.get() {
            self.close(CLIENT_CLOSED, Outcome::ClientClosed, None, Some("client closed the connection".to_owned()));
        }
    }
}

impl Ledger {
    /// Starts accounting for a `/v1` request (one more in flight until it is closed).
    pub fn new(req: &actix_web::HttpRequest, state: &web::Data<Gateway>) -> Self {
        state.metrics.inflight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            state: state.clone(),
            started: Instant::now(),
            at: state.now_ms(),
            access_key_id: None,
            method: req.method().to_string(),
            path: req.path().chars().take(200).collect(),
            model: None,
            attempts: 0,
            ttfb: None,
            tokens: None,
            closed: std::cell::Cell::new(false),
            quota: None,
        }
    }

    /// Records the request's end (once): counters, the request log and metrics.
    pub fn close(&self, status: u16, outcome: Outcome, key_id: Option<i64>, error: Option<String>) {
        if self.closed.replace(true) {
            return;
        }
        let failed = !matches!(outcome, Outcome::Ok | Outcome::CallerError | Outcome::ClientClosed);
        self.state.metrics.request(status, outcome);
        self.state.metrics.inflight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let cost = match (&self.tokens, &self.model) {
            (Some(tokens), Some(model)) => self.state.pool.prices().cost(model, tokens),
            _ => None,
        };
        if let Some(quota) = &self.quota {
            let tokens = self.tokens.map_or(0, |t| t.total_tokens.max(t.prompt_tokens + t.completion_tokens));
            let offset = self.state.pool.runtime().proxy().upstream_utc_offset_min;
            quota.record(tokens, cost.unwrap_or(0.0), self.state.now_ms(), offset);
        }
        self.state.pool.log_request(
            RequestLogRow {
                at: self.at,
                access_key_id: self.access_key_id,
                key_id,
                method: self.method.clone(),
                path: self.path.clone(),
                model: self.model.clone(),
                status,
                latency_ms: self.started.elapsed().as_millis() as i64,
                ttfb_ms: self.ttfb.map(|d| d.as_millis() as i64),
                attempts: self.attempts,
                error,
                tokens: self.tokens,
                cost,
                outcome,
            },
            failed,
        );
    }
}

/// Holds one request in flight on a key (and in the proxy) until dropped.
pub struct InflightGuard {
    slot: Arc<KeySlot>,
}

impl InflightGuard {
    pub fn new(slot: Arc<KeySlot>) -> Self {
        slot.inflight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self { slot }
    }

    pub fn slot(&self) -> &Arc<KeySlot> {
        &self.slot
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.slot.inflight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, awc::error::PayloadError>>>>;

/// The delivered answer's body on its way to the caller.
pub struct Relay {
    inner: Upstream,
    idle: Duration,
    sleep: Pin<Box<actix_web::rt::time::Sleep>>,
    sse: bool,
    status: u16,
    end: Option<(Ledger, InflightGuard)>,
    /// Bytes the body must have (its `Content-Length`).
    expected_len: Option<u64>,
    received: u64,
    /// Whether a whole stream ends with `data: [DONE]`, and whether it was seen.
    expect_done: bool,
    saw_done: bool,
    /// The last bytes of the previous chunk, so a `[DONE]` split across chunks is found.
    tail: Vec<u8>,
    /// Reads the answer's `usage` as it passes.
    tokens: Tokens,
}

/// How the relay reads the tokens of the body it passes.
enum Tokens {
    Json(JsonUsage),
    Sse(SseUsage),
    Skip,
}

impl Tokens {
    fn push(&mut self, chunk: &[u8]) {
        match self {
            Self::Json(scan) => scan.push(chunk),
            Self::Sse(scan) => scan.push(chunk),
            Self::Skip => {}
        }
    }

    fn finish(&mut self) -> Option<TokenUsage> {
        match std::mem::replace(self, Self::Skip) {
            Self::Json(scan) => scan.finish(),
            Self::Sse(scan) => scan.finish(),
            Self::Skip => None,
        }
    }
}

const DONE: &[u8] = b"data: [DONE]";

/// The end checks of a relayed body.
#[derive(Debug, Clone, Copy, Default)]
pub struct EndCheck {
    pub expected_len: Option<u64>,
    pub expect_done: bool,
    /// Whether the body is JSON (its `usage` is read; SSE bodies are read as streams).
    pub json: bool,
}

impl Relay {
    pub fn new(
        inner: Upstream,
        idle: Duration,
        sse: bool,
        status: u16,
        check: EndCheck,
        ledger: Ledger,
        guard: InflightGuard,
    ) -> Self {
        Self {
            inner,
            idle,
            sleep: Box::pin(actix_web::rt::time::sleep(idle)),
            sse,
            status,
            end: Some((ledger, guard)),
            expected_len: check.expected_len,
            received: 0,
            expect_done: check.expect_done && sse,
            saw_done: false,
            tail: Vec::new(),
            tokens: match (sse, check.json && status < 400) {
                (true, _) if status < 400 => Tokens::Sse(SseUsage::default()),
                (false, true) => Tokens::Json(JsonUsage::default()),
                _ => Tokens::Skip,
            },
        }
    }

    fn watch(&mut self, chunk: &[u8]) {
        self.received += chunk.len() as u64;
        self.tokens.push(chunk);
        if !self.expect_done || self.saw_done {
            return;
        }
        self.tail.extend_from_slice(&chunk[chunk.len().saturating_sub(DONE.len() * 2)..]);
        let found = chunk.windows(DONE.len()).any(|w| w == DONE) || self.tail.windows(DONE.len()).any(|w| w == DONE);
        self.saw_done = found;
        let keep = self.tail.len().saturating_sub(DONE.len());
        self.tail.drain(..keep);
    }

    /// Why a body that ended is not whole, if it is not.
    fn truncated(&self) -> Option<String> {
        if let Some(n) = self.expected_len
            && self.received < n
        {
            return Some(format!("the upstream closed the connection after {} of {n} bytes", self.received));
        }
        (self.expect_done && !self.saw_done)
            .then(|| "the upstream stream broke off before its end marker (connection lost)".to_owned())
    }

    fn finish(&mut self, outcome: Outcome, error: Option<String>) {
        if let Some((mut ledger, guard)) = self.end.take() {
            // Also when the stream broke or the caller left: SiliconFlow's running usage is what the
            // part already generated cost.
            ledger.tokens = self.tokens.finish();
            let slot = guard.slot();
            let key_failed = outcome == Outcome::StreamError;
            ledger.state.pool.count_attempt(slot.id, key_failed, ledger.at);
            ledger.close(self.status, outcome, Some(slot.id), error);
        }
    }

    /// Ends the stream after an upstream failure: an SSE error frame, or a cut body.
    fn fail(&mut self, message: String) -> Poll<Option<Result<Bytes, actix_web::Error>>> {
        tracing::warn!(error = %message, "upstream stream interrupted");
        self.finish(Outcome::StreamError, Some(message.clone()));
        if self.sse {
            let frame = serde_json::json!({
                "error": { "message": message, "type": "upstream_error", "code": "stream_interrupted" }
            });
            Poll::Ready(Some(Ok(Bytes::from(format!("event: error\ndata: {frame}\n\n")))))
        } else {
            Poll::Ready(Some(Err(actix_web::error::ErrorBadGateway(message))))
        }
    }
}

impl Stream for Relay {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.end.is_none() {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let deadline = actix_web::rt::time::Instant::now() + this.idle;
                this.sleep.as_mut().reset(deadline);
                this.watch(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => this.fail(format!("the upstream stream broke: {e}")),
            Poll::Ready(None) => {
                if let Some(why) = this.truncated() {
                    return this.fail(why);
                }
                this.finish(if this.status < 400 { Outcome::Ok } else { Outcome::CallerError }, None);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if std::future::Future::poll(this.sleep.as_mut(), cx).is_ready() {
                    let secs = this.idle.as_secs();
                    this.fail(format!("no data from the upstream for {secs} s (idle_timeout_s)"))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The caller went away before the end: not the key's fault.
        self.finish(Outcome::ClientClosed, Some("client closed the connection".to_owned()));
    }
}
