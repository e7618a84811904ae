//! What one client may hold of the server: a cap on its open connections, and request bodies that
//! must keep arriving. Without them an anonymous client that opens connections and stalls (a head
//! announcing a large body, then nothing) holds file descriptors for ever, and enough of them stop
//! `/v1`, `/healthz` and the admin for everyone.
//!
//! - **Connections per client address** (`KEYPOOL_MAX_CONNECTIONS_PER_CLIENT`, default 256, 0 = no
//!   cap): a connection over the cap is shut at once, before anything is read from it. IPv6 addresses
//!   count per /64, the block one subscriber gets. The count is of TCP peers: behind a reverse proxy
//!   every connection comes from the proxy, so raise the cap there or set 0 and let the proxy limit.
//! - **Bodies** (`KEYPOOL_BODY_GRACE_S`, default 10; `KEYPOOL_BODY_MIN_RATE`, bytes per second, default
//!   8192, 0 = no limit): after the grace, a body must have averaged at least the minimum rate, or the
//!   request ends with 408 and the connection is closed. A 32 MB body then passes on any link faster
//!   than 64 kbit/s. The head has actix's own limit (5 s).

use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::rt::time::{Instant, Sleep, sleep_until};
use actix_web::web::Bytes;
use futures_util::Stream;

pub use crate::config::BodyPace;
pub use crate::error::is_too_slow;

/// The message of a body that arrived too slowly (the `io::Error` inside the `PayloadError`).
const TOO_SLOW: &str = "the request body arrived too slowly";

/// Middleware: a request with a body reads it through [`Paced`].
pub async fn pace_bodies(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let pace = req.app_data::<actix_web::web::Data<crate::state::AppState>>().map(|s| s.config.body_pace);
    if let Some(pace) = pace
        && pace.min_rate > 0
        && has_body(&req)
    {
        let inner = req.take_payload();
        let paced: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(Paced::new(inner, pace));
        req.set_payload(Payload::from(paced));
    }
    next.call(req).await
}

fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
}

/// A request body that fails with [`TOO_SLOW`] when, after the grace, it has averaged less than the
/// minimum rate: by `start + grace + received / rate` the next bytes must have come.
pub struct Paced<S> {
    inner: S,
    start: Instant,
    pace: BodyPace,
    received: u64,
    timer: Pin<Box<Sleep>>,
    failed: bool,
}

impl<S> Paced<S> {
    pub fn new(inner: S, pace: BodyPace) -> Self {
        let start = Instant::now();
        Self { inner, start, pace, received: 0, timer: Box::pin(sleep_until(start + pace.grace)), failed: false }
    }

    fn deadline(&self) -> Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / self.pace.min_rate.max(1) as f64);
        self.start + self.pace.grace + earned
    }
}

impl<S> Stream for Paced<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.received += chunk.len() as u64;
                let deadline = self.deadline();
                self.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.failed = true;
                    Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(io::ErrorKind::TimedOut, TOO_SLOW)))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Open connections per client address, shared by every worker.
#[derive(Debug)]
pub struct ConnectionCap {
    per_client: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
}

impl ConnectionCap {
    /// `per_client` 0 means no cap.
    pub fn new(per_client: usize) -> Arc<Self> {
        Arc::new(Self { per_client, open: Mutex::new(HashMap::new()), refused: AtomicU64::new(0) })
    }

    /// Connections shut because their client already held the cap.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// `HttpServer::on_connect`: counts the connection for its client, or shuts it when the client is at
    /// the cap. The count is released when the connection's extensions are dropped, i.e. when it closes.
    pub fn on_connect(self: &Arc<Self>, conn: &dyn Any, ext: &mut Extensions) {
        if self.per_client == 0 {
            return;
        }
        let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else { return };
        let Ok(peer) = stream.peer_addr() else { return };
        let client = client_block(peer.ip());
        let admitted = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let count = open.entry(client).or_insert(0);
            if *count < self.per_client {
                *count += 1;
                true
            } else {
                false
            }
        };
        if admitted {
            ext.insert(Held { cap: self.clone(), client });
        } else {
            // Shut both ways: the connection's reader sees the end at once and the descriptor is
            // freed, before a single byte of the request is read.
            let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
            if self.refused.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
                tracing::warn!(client = %client, cap = self.per_client, "connections over the per-client cap are shut");
            }
        }
    }
}

/// One admitted connection; dropping it gives the slot back.
struct Held {
    cap: Arc<ConnectionCap>,
    client: IpAddr,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.cap.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// The unit a client is counted by: an IPv4 address, or the /64 of an IPv6 one (IPv4-mapped IPv6
/// addresses count as their IPv4 address).
fn client_block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_block(a), client_block(b));
        assert_ne!(client_block(a), client_block(c));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(client_block(mapped), IpAddr::V4([10, 1, 2, 3].into()));
    }

    #[actix_web::test]
    async fn a_stalled_body_fails_after_the_grace_and_a_flowing_one_passes() {
        tokio::time::pause();
        let pace = BodyPace { grace: Duration::from_secs(10), min_rate: 1000 };
        // 5,000 bytes, then nothing: the grace plus the 5 s those bytes earned, then the error.
        let stalled =
            futures_util::stream::iter([Ok(Bytes::from(vec![b'x'; 5000]))]).chain(futures_util::stream::pending());
        let mut body = Paced::new(Box::pin(stalled), pace);
        let start = Instant::now();
        assert_eq!(body.next().await.map(|r| r.map(|b| b.len()).ok()), Some(Some(5000)));
        let err = body.next().await.and_then(|r| r.err());
        assert!(err.as_ref().is_some_and(is_too_slow), "{err:?}");
        assert_eq!(start.elapsed().as_secs(), 15);
        assert!(body.next().await.is_none());

        // A body that keeps the rate is never cut, however long it runs.
        let flowing = futures_util::stream::unfold(0, |n| async move {
            (n < 100).then(|| (Ok(Bytes::from(vec![b'y'; 2000])), n + 1))
        })
        .then(|chunk| async move {
            actix_web::rt::time::sleep(Duration::from_secs(1)).await;
            chunk
        });
        let body = Paced::new(Box::pin(flowing), pace);
        let total: usize = body.map(|r| r.map(|b| b.len()).unwrap_or(0)).collect::<Vec<_>>().await.iter().sum();
        assert_eq!(total, 200_000);
    }
}
