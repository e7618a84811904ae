//! The outbound side: one awc client per worker (awc is not `Send`), rebuilt when the connect timeout
//! setting changes, and the header rules (hop-by-hop, caller credentials and cookies never go up;
//! upstream cookies and CORS headers never come back), and the framing rule (an answer whose body ends
//! at connection close is never delivered, see [`close_delimited`]).

use std::cell::RefCell;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::http::{StatusCode, Version};

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

/// Whether a caller's header goes to the upstream: only an allow-list of what OpenAI-compatible clients
/// send about the request and themselves — `Content-Type`, `Accept`, `Accept-Encoding`,
/// `Accept-Language`, `User-Agent`, `Cache-Control`, `Idempotency-Key`, `X-Request-Id`, and the OpenAI
/// SDKs' `OpenAI-*` (`OpenAI-Beta`, …) and `X-Stainless-*`. Everything else stays here: credentials
/// (`Authorization`, for which the pool key is set separately, `Cookie`, `X-Api-Key`, `Api-Key`), what
/// proxies say about the caller (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`), `Host`, `Origin`, `Referer`,
/// framing and hop-by-hop headers, and anything unknown. Headers named by `Connection` are dropped by
/// the caller of this ([`connection_listed`]).
pub fn forward_request_header(name: &HeaderName) -> bool {
    // Header names are lowercase in `HeaderName`.
    let name = name.as_str();
    matches!(
        name,
        "content-type"
            | "accept"
            | "accept-encoding"
            | "accept-language"
            | "user-agent"
            | "cache-control"
            | "idempotency-key"
            | "x-request-id"
    ) || name.starts_with("openai-")
        || name.starts_with("x-stainless-")
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

pub use crate::domain::proxy::CLOSE_DELIMITED_MESSAGE;

/// Whether an upstream answer's body is delimited by the connection closing (RFC 9112 §6.3, rule 8): an
/// HTTP/1.x answer that may have a body (not to `HEAD`, not 1xx, 204 or 304) with neither a
/// `Content-Length` nor a chunked `Transfer-Encoding`. HTTP/1.0 knows no chunked coding, so there any
/// answer without `Content-Length` is close-delimited; HTTP/2 and later frame every body themselves.
///
/// Such an answer is legal, but keypool must not deliver it:
/// - awc reads a close-delimited HTTP/1.1 body as empty (actix/actix-web#2287: its decoder gives the
///   response no payload at all), so the caller would get an empty "success";
/// - for HTTP/1.0, awc does read up to the close, but a connection that drops mid-answer then looks like
///   a whole body: a truncated answer could not be told from a complete one.
///
/// The proxy fails such an attempt over as a transient fault with [`CLOSE_DELIMITED_MESSAGE`].
///
/// This reads the headers awc exposes, which for HTTP/1.x are the upstream's as received: awc (actix-http's
/// h1 decoder) keeps `Transfer-Encoding` and `Content-Length` in `ClientResponse::headers()` and picks its
/// body decoder from the same two headers (chunked first, then a length, else no body for HTTP/1.1 and
/// read-to-close for HTTP/1.0), so this rule matches what awc does with the body. A `Content-Length: 0`
/// is a length (an empty body, read correctly).
pub fn close_delimited(status: StatusCode, version: Version, headers: &HeaderMap, head_request: bool) -> bool {
    let bodiless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if bodiless || version >= Version::HTTP_2 {
        return false;
    }
    if version == Version::HTTP_11 && chunked(headers) {
        return false;
    }
    !headers.contains_key(header::CONTENT_LENGTH)
}

/// Whether the last transfer coding of the last `Transfer-Encoding` header is `chunked`.
fn chunked(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TRANSFER_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|c| !c.is_empty())
        .is_some_and(|c| c.eq_ignore_ascii_case("chunked"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_allow_listed_request_headers_go_upstream() {
        let forwarded = |name: &str| forward_request_header(&HeaderName::from_bytes(name.as_bytes()).unwrap());
        for name in [
            "content-type",
            "Content-Type",
            "accept",
            "accept-encoding",
            "accept-language",
            "user-agent",
            "cache-control",
            "idempotency-key",
            "x-request-id",
            "openai-beta",
            "OpenAI-Beta",
            "openai-organization",
            "x-stainless-lang",
            "X-Stainless-Package-Version",
            "x-stainless-retry-count",
        ] {
            assert!(forwarded(name), "{name}");
        }
        for name in [
            "authorization",
            "proxy-authorization",
            "cookie",
            "x-api-key",
            "api-key",
            "forwarded",
            "x-real-ip",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-forwarded-port",
            "host",
            "origin",
            "referer",
            "content-length",
            "transfer-encoding",
            "connection",
            "keep-alive",
            "te",
            "upgrade",
            "x-custom",
            "x-openai-key",
            "stainless-lang",
        ] {
            assert!(!forwarded(name), "{name}");
        }
    }

    const OK: StatusCode = StatusCode::OK;
    const H10: Version = Version::HTTP_10;
    const H11: Version = Version::HTTP_11;

    #[test]
    fn an_http11_body_without_length_or_chunking_ends_at_close() {
        assert!(close_delimited(OK, H11, &headers(&[]), false));
        assert!(close_delimited(
            OK,
            H11,
            &headers(&[("content-type", "application/json"), ("connection", "close")]),
            false
        ));
        assert!(close_delimited(OK, H11, &headers(&[("content-type", "text/event-stream")]), false));
        // A body is a body whatever the status: errors and redirects too.
        for status in [201, 206, 301, 400, 404, 429, 500, 503] {
            assert!(close_delimited(StatusCode::from_u16(status).unwrap(), H11, &headers(&[]), false), "{status}");
        }
        // A transfer coding that does not end in chunked leaves the end to the close.
        assert!(close_delimited(OK, H11, &headers(&[("transfer-encoding", "identity")]), false));
        assert!(close_delimited(OK, H11, &headers(&[("transfer-encoding", "chunked, gzip")]), false));
        assert!(close_delimited(OK, H11, &headers(&[("transfer-encoding", "")]), false));
    }

    #[test]
    fn a_length_or_a_chunked_coding_delimits_an_http11_body() {
        assert!(!close_delimited(OK, H11, &headers(&[("content-length", "42")]), false));
        assert!(!close_delimited(OK, H11, &headers(&[("content-length", "0")]), false));
        assert!(!close_delimited(OK, H11, &headers(&[("transfer-encoding", "chunked")]), false));
        assert!(!close_delimited(OK, H11, &headers(&[("transfer-encoding", "Chunked")]), false));
        assert!(!close_delimited(OK, H11, &headers(&[("transfer-encoding", " gzip , chunked ")]), false));
        assert!(!close_delimited(
            OK,
            H11,
            &headers(&[("transfer-encoding", "gzip"), ("transfer-encoding", "chunked")]),
            false
        ));
        assert!(!close_delimited(
            OK,
            H11,
            &headers(&[("transfer-encoding", "chunked"), ("content-length", "42")]),
            false
        ));
        assert!(!close_delimited(
            StatusCode::INTERNAL_SERVER_ERROR,
            H11,
            &headers(&[("content-length", "2"), ("connection", "close")]),
            false
        ));
    }

    #[test]
    fn http10_has_no_chunked_coding_so_only_a_length_delimits() {
        assert!(close_delimited(OK, H10, &headers(&[]), false));
        assert!(close_delimited(OK, H10, &headers(&[("transfer-encoding", "chunked")]), false));
        assert!(close_delimited(StatusCode::BAD_GATEWAY, H10, &headers(&[]), false));
        assert!(close_delimited(OK, Version::HTTP_09, &headers(&[]), false));
        assert!(!close_delimited(OK, H10, &headers(&[("content-length", "42")]), false));
        assert!(!close_delimited(OK, H10, &headers(&[("content-length", "0")]), false));
    }

    #[test]
    fn answers_without_a_body_are_never_close_delimited() {
        for version in [H10, H11] {
            for status in [100, 101, 103, 204, 304] {
                let status = StatusCode::from_u16(status).unwrap();
                assert!(!close_delimited(status, version, &headers(&[]), false), "{status} {version:?}");
            }
            // The answer to HEAD has no body, whatever its headers say.
            assert!(!close_delimited(OK, version, &headers(&[]), true), "{version:?}");
            assert!(!close_delimited(StatusCode::NOT_FOUND, version, &headers(&[("connection", "close")]), true));
        }
    }

    #[test]
    fn http2_and_later_frame_every_body() {
        for version in [Version::HTTP_2, Version::HTTP_3] {
            assert!(!close_delimited(OK, version, &headers(&[]), false), "{version:?}");
            assert!(!close_delimited(OK, version, &headers(&[("content-type", "text/event-stream")]), false));
        }
    }

    /// One raw HTTP answer per connection on 127.0.0.1, whatever the request.
    fn raw_server(answer: &'static [u8]) -> String {
        use std::io::{BufRead, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let mut reader = std::io::BufReader::new(stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let mut stream = reader.into_inner();
                let _ = stream.write_all(answer);
                let _ = stream.flush();
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        });
        url
    }

    /// What awc makes of an answer: its version and headers as `close_delimited` sees them, and the
    /// body as awc reads it.
    async fn through_awc(answer: &'static [u8]) -> (bool, HeaderMap, Vec<u8>) {
        let url = raw_server(answer);
        let mut res = build(Duration::from_secs(5)).post(url).send_body("{}").await.unwrap();
        let delimited = close_delimited(res.status(), res.version(), res.headers(), false);
        let headers = res.headers().clone();
        let body = res.body().await.map(|b| b.to_vec()).unwrap_or_default();
        (delimited, headers, body)
    }

    /// Pins down what this rule relies on in awc (and the bug that makes it necessary): if an awc
    /// upgrade changes any of it, this fails first.
    #[actix_web::test]
    async fn awc_keeps_the_framing_headers_and_reads_close_delimited_http11_bodies_as_empty() {
        const BODY: &[u8] = br#"{"id":"x"}"#;
        let (delimited, headers, body) = through_awc(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\n{\"id\"\r\n5\r\n:\"x\"}\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(headers.get("transfer-encoding").unwrap(), "chunked", "awc keeps Transfer-Encoding");
        assert_eq!((delimited, body.as_slice()), (false, BODY));

        let (delimited, headers, body) =
            through_awc(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{\"id\":\"x\"}").await;
        assert_eq!(headers.get("content-length").unwrap(), "10", "awc keeps Content-Length");
        assert_eq!((delimited, body.as_slice()), (false, BODY));

        // actix/actix-web#2287: the body is there on the wire, awc hands over nothing.
        let (delimited, _, body) = through_awc(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"id\":\"x\"}",
        )
        .await;
        assert!(delimited);
        assert!(body.is_empty(), "awc now reads close-delimited HTTP/1.1 bodies: {:?}", String::from_utf8_lossy(&body));

        // HTTP/1.0: awc reads up to the close (but could not tell a cut answer from a whole one).
        let (delimited, _, body) = through_awc(b"HTTP/1.0 200 OK\r\n\r\n{\"id\":\"x\"}").await;
        assert!(delimited);
        assert_eq!(body.as_slice(), BODY);
    }
}
