//! How upstream answers delimit their bodies (DESIGN §8). An HTTP/1.x body may legally end at connection
//! close (no `Content-Length`, not chunked); awc reads such a body as empty (actix/actix-web#2287), and a
//! connection that drops would look like a whole answer. The gateway never delivers one: the attempt is
//! failed over as a transient fault, and when every attempt ends that way the caller gets a 502 saying
//! why, never an empty 200.
//!
//! The upstream here is a raw TCP server, since a real HTTP server library frames every body itself. The
//! key says how it answers a request:
//! - `sk-closesse…`: `200`, `text/event-stream`, `Connection: close`, no length, not chunked; an SSE
//!   completion stream ending in `data: [DONE]`, then the connection closes;
//! - `sk-close…`: the same with a JSON completion (`application/json`);
//! - `sk-http10…`: `HTTP/1.0 200 OK` without `Content-Length`, the JSON completion, then the close;
//! - `sk-chunked…`: a chunked JSON completion (an SSE stream if the request asks `"stream":true`),
//!   connection kept alive;
//! - `sk-length…`: the JSON completion with its `Content-Length`, connection kept alive;
//! - any other key: 401.
//!
//! Every completion names the key that made it (`"answered by <key>"`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keypool::proxy::upstream::CLOSE_DELIMITED_MESSAGE;

use crate::support::{self, TestApp};

/// Requests per key.
#[derive(Clone, Default)]
struct Hits(Arc<Mutex<HashMap<String, usize>>>);

impl Hits {
    fn of(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }

    fn hit(&self, key: &str) {
        *self.0.lock().unwrap().entry(key.to_owned()).or_default() += 1;
    }
}

struct RawUpstream {
    url: String,
    hits: Hits,
}

/// Starts the raw upstream on a free port of 127.0.0.1 (a thread per connection).
fn start() -> RawUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Hits::default();
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let hits = counted.clone();
            std::thread::spawn(move || serve(stream, &hits));
        }
    });
    RawUpstream { url, hits }
}

/// A request as far as the upstream cares.
struct Request {
    key: String,
    stream: bool,
    close: bool,
}

/// Reads one request (head, then a body of `Content-Length` bytes); None at the end of the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let (mut key, mut length, mut close) = (String::new(), 0usize, false);
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "authorization" => key = value.strip_prefix("Bearer ").unwrap_or(value).to_owned(),
            "content-length" => length = value.parse().ok()?,
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let stream = String::from_utf8_lossy(&body).contains(r#""stream":true"#);
    Some(Request { key, stream, close })
}

fn completion(key: &str) -> String {
    let message = serde_json::json!({"role": "assistant", "content": format!("answered by {key}")});
    serde_json::json!({
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
    })
    .to_string()
}

fn event_stream(key: &str) -> String {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        let chunk = serde_json::json!({
            "id": "x",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        });
        format!("data: {chunk}\n\n")
    };
    let first = chunk(
        serde_json::json!({"role": "assistant", "content": format!("answered by {key}")}),
        serde_json::Value::Null,
    );
    let last = chunk(serde_json::json!({}), serde_json::json!("stop"));
    format!("{first}{last}data: [DONE]\n\n")
}

/// Answers requests on one connection until it ends or an answer closes it.
fn serve(stream: TcpStream, hits: &Hits) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut out) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        hits.hit(&req.key);
        let key = req.key.as_str();
        let (answer, keep_alive) = if key.starts_with("sk-closesse") {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                        Connection: close\r\n\r\n";
            (format!("{head}{}", event_stream(key)), false)
        } else if key.starts_with("sk-close") {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
            (format!("{head}{}", completion(key)), false)
        } else if key.starts_with("sk-http10") {
            (format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{}", completion(key)), false)
        } else if key.starts_with("sk-chunked") {
            let (content_type, body) = if req.stream {
                ("text/event-stream", event_stream(key))
            } else {
                ("application/json", completion(key))
            };
            let (a, b) = body.split_at(body.len() / 2);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n\
                 {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            );
            (answer, true)
        } else if key.starts_with("sk-length") {
            let body = completion(key);
            (
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
                true,
            )
        } else {
            let body = r#"{"error":{"message":"unknown key","type":"invalid_request_error","code":"invalid_api_key"}}"#;
            (
                format!(
                    "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
                true,
            )
        };
        if out.write_all(answer.as_bytes()).and_then(|()| out.flush()).is_err() {
            return;
        }
        if !keep_alive || req.close {
            // The whole request was read: a plain FIN, no reset, ends the body.
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
    }
}

struct Gateway {
    app: TestApp,
    upstream: RawUpstream,
    token: String,
}

/// The app over the raw upstream with these keys (active, with a balance), taken in turn.
async fn gateway(keys: &[&str]) -> Gateway {
    let upstream = start();
    let url = upstream.url.clone();
    let app = support::spawn_with(move |c| c.upstream_override = Some(url)).await;
    let token = support::access_key(&app).await;
    support::set_settings(&app, &[("selection_strategy", "round_robin"), ("max_attempts", "3")]).await;
    let keys: Vec<(&str, f64)> = keys.iter().map(|k| (*k, 10.0)).collect();
    support::seed_active(&app, &keys).await;
    Gateway { app, upstream, token }
}

impl Gateway {
    async fn chat(&self, stream: bool) -> reqwest::Response {
        let body = serde_json::json!({
            "model": "Qwen/Qwen2.5-7B-Instruct",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream
        });
        let url = self.app.url("/v1/chat/completions");
        self.app.client.post(url).bearer_auth(&self.token).json(&body).send().await.unwrap()
    }

    /// A JSON completion request answered 200 by `key`, with its whole body.
    async fn assert_answered_by(&self, key: &str) {
        let res = self.chat(false).await;
        assert_eq!(res.status(), 200);
        assert!(support::header(&res, "content-type").starts_with("application/json"));
        let text = res.text().await.unwrap();
        assert!(!text.is_empty(), "an empty 200 was delivered");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        assert_eq!(body, serde_json::from_str::<serde_json::Value>(&completion(key)).unwrap());
    }
}

/// The content of an SSE completion stream, and whether it ended in `data: [DONE]`.
fn streamed_content(text: &str) -> (String, bool) {
    let mut content = String::new();
    let mut done = false;
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: serde_json::Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data:?}"));
        content.push_str(chunk["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
    }
    (content, done)
}

#[actix_web::test]
async fn a_close_delimited_answer_is_failed_over_to_a_key_that_frames_its_body() {
    let (close, length) = ("sk-close-aaaaaaaaaaaaaaaaaaaaaa", "sk-length-bbbbbbbbbbbbbbbbbbbbb");
    let gw = gateway(&[close, length]).await;
    for _ in 0..20 {
        gw.assert_answered_by(length).await;
    }
    assert_eq!(gw.upstream.hits.of(length), 20, "every request was delivered by the framed key, once");
    assert!(gw.upstream.hits.of(close) >= 1, "the close-delimited key was tried (and failed over)");
}

#[actix_web::test]
async fn only_close_delimited_answers_get_a_502_saying_why_never_an_empty_200() {
    let keys = ["sk-close-aaaaaaaaaaaaaaaaaaaaaa", "sk-close-bbbbbbbbbbbbbbbbbbbbbb"];
    let gw = gateway(&keys).await;
    for _ in 0..3 {
        let res = gw.chat(false).await;
        assert_eq!(res.status(), 502);
        let text = res.text().await.unwrap();
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        assert_eq!(body["error"]["type"], "upstream_error", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(CLOSE_DELIMITED_MESSAGE), "{message}");
    }
    for key in keys {
        assert_eq!(gw.upstream.hits.of(key), 3, "{key} was tried on every request");
    }
    // A stream is no different: a 502, not a 200 whose stream is empty or broken.
    let gw = gateway(&["sk-closesse-aaaaaaaaaaaaaaaaaaa"]).await;
    let res = gw.chat(true).await;
    assert_eq!(res.status(), 502);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains(CLOSE_DELIMITED_MESSAGE), "{body}");
}

#[actix_web::test]
async fn a_close_delimited_event_stream_is_failed_over_too() {
    let (close, chunked) = ("sk-closesse-aaaaaaaaaaaaaaaaaaa", "sk-chunked-bbbbbbbbbbbbbbbbbbbb");
    let gw = gateway(&[close, chunked]).await;
    for _ in 0..10 {
        let res = gw.chat(true).await;
        assert_eq!(res.status(), 200);
        assert_eq!(support::header(&res, "content-type"), "text/event-stream");
        let (content, done) = streamed_content(&res.text().await.unwrap());
        assert_eq!((content.as_str(), done), (format!("answered by {chunked}").as_str(), true));
    }
    assert_eq!(gw.upstream.hits.of(chunked), 10);
    assert!(gw.upstream.hits.of(close) >= 1, "the close-delimited stream was tried (and failed over)");
}

#[actix_web::test]
async fn an_http10_answer_without_a_length_is_failed_over() {
    let (http10, length) = ("sk-http10-aaaaaaaaaaaaaaaaaaaaa", "sk-length-bbbbbbbbbbbbbbbbbbbbb");
    let gw = gateway(&[http10, length]).await;
    for _ in 0..10 {
        gw.assert_answered_by(length).await;
    }
    assert_eq!(gw.upstream.hits.of(length), 10);
    assert!(gw.upstream.hits.of(http10) >= 1, "the HTTP/1.0 key was tried (and failed over)");
}

#[actix_web::test]
async fn chunked_and_content_length_answers_pass_whole() {
    let (chunked, length) = ("sk-chunked-aaaaaaaaaaaaaaaaaaaa", "sk-length-bbbbbbbbbbbbbbbbbbbbb");
    let gw = gateway(&[chunked, length]).await;
    let mut answered: HashMap<String, usize> = HashMap::new();
    for _ in 0..10 {
        let res = gw.chat(false).await;
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        let content = body["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
        let key = content.strip_prefix("answered by ").unwrap();
        assert!(key == chunked || key == length, "{content}");
        assert_eq!(body, serde_json::from_str::<serde_json::Value>(&completion(key)).unwrap());
        *answered.entry(key.to_owned()).or_default() += 1;
    }
    // Each answering at the first attempt: no failover.
    for key in [chunked, length] {
        assert_eq!(gw.upstream.hits.of(key), answered.get(key).copied().unwrap_or(0), "{key}");
    }
    assert_eq!(gw.upstream.hits.total(), 10);

    // A chunked event stream passes whole, up to `data: [DONE]`.
    let gw = gateway(&[chunked]).await;
    let res = gw.chat(true).await;
    assert_eq!(res.status(), 200);
    assert_eq!(support::header(&res, "content-type"), "text/event-stream");
    let (content, done) = streamed_content(&res.text().await.unwrap());
    assert_eq!((content, done), (format!("answered by {chunked}"), true));
    assert_eq!(gw.upstream.hits.of(chunked), 1);
}
