//! The outbound side: one awc client per worker (awc is not `Send`), rebuilt when the connect timeout
//! setting changes, and the header rules (hop-by-hop, caller credentials and cookies never go up;
//! upstream cookies and CORS headers never come back).

use std::cell::RefCell;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName};

/// The awc client of one worker thread.
pub struct UpstreamClient {
    inner: RefCell<(Duration, awc::Client)>,
}

/// Connections per worker to the upstream (awc's default of 100 would cap throughput).
const CONNECTION_LIMIT: usize = 2048;

fn build(connect_timeout: Duration) -> awc::Client {
    // awc's rustls needs a process-wide crypto provider (idempotent).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connector = awc::Connector::new().timeout(connect_timeout).limit(CONNECTION_LIMIT);
    // No client-wide timeout: each request sets the first-byte timeout in force.
    awc::Client::builder().connector(connector).disable_timeout().disable_redirects().finish()
}

impl Default for UpstreamClient {
    fn default() -> Self {
        let t = Duration::from_secs(10);
        Self { inner: RefCell::new((t, build(t))) }
    }
}

impl UpstreamClient {
    /// The client, with the connect timeout in force.
    pub fn get(&self, connect_timeout: Duration) -> awc::Client {
        let mut inner = self.inner.borrow_mut();
        if inner.0 != connect_timeout {
            *inner = (connect_timeout, build(connect_timeout));
        }
        inner.1.clone()
    }
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Whether a caller's header goes to the upstream.
pub fn forward_request_header(name: &HeaderName) -> bool {
    !hop_by_hop(name)
        && !matches!(
            name.as_str(),
            "host" | "authorization" | "cookie" | "content-length" | "origin" | "referer" | "x-forwarded-for"
        )
}

/// Whether an upstream header goes back to the caller.
pub fn forward_response_header(name: &HeaderName) -> bool {
    !hop_by_hop(name)
        && !matches!(name.as_str(), "content-length" | "set-cookie" | "date" | "server")
        && !name.as_str().starts_with("access-control-")
}

/// Names of the headers listed in a `Connection` header (also hop-by-hop).
pub fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("connection")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}
