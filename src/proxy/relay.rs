//! Passing an upstream body to the caller chunk by chunk, with the idle timeout between chunks, and
//! recording how it ended. When the upstream dies mid-stream, an SSE caller gets an `event: error`
//! frame and no `data: [DONE]` (it must be able to tell a truncated answer from a whole one); any
//! other body is cut, so the caller's HTTP client sees an incomplete response.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::web::{self, Bytes};
use futures_util::Stream;

use super::metrics::Outcome;
use crate::domain::usage::RequestLogRow;
use crate::pool::KeySlot;
use crate::state::AppState;

/// Everything needed to account for one request once it has ended.
pub struct Ledger {
    pub state: web::Data<AppState>,
    pub started: Instant,
    pub at: i64,
    pub access_key_id: Option<i64>,
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    pub attempts: u32,
    pub ttfb: Option<Duration>,
}

impl Ledger {
    /// Records the request's end: counters, the request log and metrics.
    pub fn close(&self, status: u16, outcome: Outcome, key_id: Option<i64>, error: Option<String>) {
        let failed = !matches!(outcome, Outcome::Ok | Outcome::CallerError | Outcome::ClientClosed);
        self.state.metrics.request(status, outcome);
        self.state.metrics.inflight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
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
}

impl Relay {
    pub fn new(
        inner: Upstream,
        idle: Duration,
        sse: bool,
        status: u16,
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
        }
    }

    fn finish(&mut self, outcome: Outcome, error: Option<String>) {
        if let Some((ledger, guard)) = self.end.take() {
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
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => this.fail(format!("upstream stream broke: {e}")),
            Poll::Ready(None) => {
                this.finish(if this.status < 400 { Outcome::Ok } else { Outcome::CallerError }, None);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_ready() {
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
