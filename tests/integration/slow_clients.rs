//! Clients that open connections and stall cannot take the service from everyone else: connections
//! over the per-client cap are shut at once, bodies that stop arriving end with 408, and meanwhile
//! `/v1` and `/healthz` answer other clients.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::process::{seed_routable, start_server_with_nofile, wait_with_deadline};
use crate::support::TestDb;

const STALLED: usize = 400;
const CAP: usize = 32;

/// Opens a connection from `source`, sends a head announcing a 60,000-byte body and a few bytes of
/// it, then stalls; returns what the server sent before it closed the connection.
async fn stall(server: SocketAddr, source: &str, head: String) -> Vec<u8> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let Ok(mut stream) = socket.connect(server).await else { return Vec::new() };
    // A connection shut before its head was read may refuse the write: it is closed either way.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer
}

#[test]
fn stalled_bodies_and_connection_floods_cannot_starve_v1_or_healthz() {
    let upstream = crate::mock::start();
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let token = seed_routable(&url, "sk-ok-5-aaaaaaaaaaaaaaaaaaaaa");
    // 256 descriptors: the 400 stalled connections would take them all without the cap.
    let (mut child, port, log) = start_server_with_nofile(
        dir.path(),
        Some(&env_url),
        &[
            ("KEYPOOL_UPSTREAM_URL", &upstream.url),
            ("KEYPOOL_WORKERS", "2"),
            ("KEYPOOL_MAX_CONNECTIONS_PER_CLIENT", "32"),
            ("KEYPOOL_BODY_GRACE_S", "15"),
            ("KEYPOOL_BODY_MIN_RATE", "1000"),
        ],
        256,
    );
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    actix_web::rt::System::new().block_on(async {
        // The attacker's connections come from 127.0.0.2; everyone else from 127.0.0.1.
        let login = format!(
            "POST /login HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 60000\r\n\r\nusername=a"
        );
        let chat = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {server}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{{\"model\""
        );
        // One of each from a third address, to read what a stalled client is told.
        let login_answer = actix_web::rt::spawn(stall(server, "127.0.0.3", login.clone()));
        let chat_answer = actix_web::rt::spawn(stall(server, "127.0.0.3", chat.clone()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..STALLED {
            let head = if i % 2 == 0 { login.clone() } else { chat.clone() };
            let tx = tx.clone();
            actix_web::rt::spawn(async move {
                let _ = tx.send(stall(server, "127.0.0.2", head).await);
            });
        }
        drop(tx);

        // Everything over the cap is shut at once, before the body time limit could matter.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut answers = Vec::new();
        while answers.len() < STALLED - CAP {
            let left = deadline.saturating_duration_since(Instant::now());
            match actix_web::rt::time::timeout(left, rx.recv()).await {
                Ok(Some(answer)) => answers.push(answer),
                _ => panic!(
                    "only {} of the {} connections over the cap were shut; log: {:?}",
                    answers.len(),
                    STALLED - CAP,
                    log.lock().unwrap()
                ),
            }
        }
        assert!(answers.iter().all(Vec::is_empty), "a connection over the cap was served");

        // With 32 stalled connections still held, other clients are served.
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let health = client.get(format!("http://{server}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        for _ in 0..5 {
            let res = client
                .post(format!("http://{server}/v1/chat/completions"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"model": "m", "messages": []}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }

        // The held ones end with 408 once their bodies are late, and the connection is closed.
        let mut held = Vec::new();
        while let Some(answer) = actix_web::rt::time::timeout(Duration::from_secs(120), rx.recv()).await.unwrap() {
            held.push(String::from_utf8_lossy(&answer).into_owned());
        }
        assert_eq!(held.len(), CAP);
        for answer in &held {
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        }
        let chat_answer = String::from_utf8_lossy(&chat_answer.await.unwrap()).into_owned();
        assert!(chat_answer.starts_with("HTTP/1.1 408"), "{chat_answer}");
        assert!(chat_answer.contains("\"code\":\"body_too_slow\""), "/v1 says why in OpenAI's shape: {chat_answer}");
        let login_answer = String::from_utf8_lossy(&login_answer.await.unwrap()).into_owned();
        assert!(login_answer.starts_with("HTTP/1.1 408"), "{login_answer}");
        assert!(login_answer.contains("上传过慢"), "the page says why (in the default language): {login_answer}");
    });
    let _ = child.kill();
    let _ = wait_with_deadline(child, Duration::from_secs(30));
    drop(db);
}
