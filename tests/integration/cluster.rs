//! Two `keypool serve` processes on one database (the test's own: a new PostgreSQL database when
//! `KEYPOOL_TEST_POSTGRES_URL` is set, else one SQLite file): what one instance changes is routed by the
//! other within the propagation bound, sessions and counters are shared, the schedule runs once per
//! period across both, and killing the instance that holds the schedule's lease lets the other take it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Text};

use crate::support::TestDb;

const PASSWORD: &str = "cluster-password-1";
const PERIOD_MS: i64 = 2_000;
/// Proxied requests this test sent with an access key the instance knew, and those a key answered.
static SENT: AtomicI64 = AtomicI64::new(0);
static ANSWERED: AtomicI64 = AtomicI64::new(0);

/// How long a change on one instance may take to be routed by the other (it polls every 250 ms).
const PROPAGATION: Duration = Duration::from_secs(5);

struct Instance {
    child: Child,
    base: String,
    logs: Arc<Mutex<Vec<serde_json::Value>>>,
}

fn spawn(database: &str, upstream: &str) -> Child {
    Command::new(crate::process::BIN)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("PORT")
        .env_remove("KEYPOOL_ADMIN_USERNAME")
        .env("DATABASE_URL", database)
        .env("KEYPOOL_UPSTREAM_URL", upstream)
        .env("KEYPOOL_SECRET", "s".repeat(64))
        .env("KEYPOOL_ADMIN_PASSWORD", PASSWORD)
        .env("KEYPOOL_INSECURE_COOKIES", "1")
        .env("KEYPOOL_SCHEDULE_TICK_MS", "200")
        .env("KEYPOOL_SCHEDULE_PERIOD_MS", PERIOD_MS.to_string())
        .env("KEYPOOL_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the JSON log lines of a started process until it says it listens.
async fn listening(mut child: Child) -> Instance {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = logs.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let value = serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({ "raw": line }));
            sink.lock().unwrap().push(value);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let port = logs.lock().unwrap().iter().find_map(|l| {
            (l["fields"]["message"] == "keypool is listening").then(|| l["fields"]["port"].as_u64()).flatten()
        });
        if let Some(port) = port {
            return Instance { child, base: format!("http://127.0.0.1:{port}"), logs };
        }
        assert!(Instant::now() < deadline, "no start-up line: {:?}", logs.lock().unwrap());
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Instance {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends of the schedule periods this instance claimed (and ran a check for).
    fn claimed_periods(&self) -> Vec<i64> {
        let logs = self.logs.lock().unwrap();
        logs.iter()
            .filter(|l| l["fields"]["message"] == "scheduled check started")
            .filter_map(|l| l["fields"]["period_end"].as_i64())
            .collect()
    }

    /// One proxied request; counted, so the test knows what the counters must add up to.
    async fn chat(&self, client: &reqwest::Client, token: &str) -> u16 {
        let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let url = format!("{}/v1/chat/completions", self.base);
        let status = client.post(url).bearer_auth(token).json(&body).send().await.unwrap().status().as_u16();
        if status != 401 {
            // Known to the instance: counted on the access key.
            SENT.fetch_add(1, Ordering::Relaxed);
        }
        if status == 200 {
            ANSWERED.fetch_add(1, Ordering::Relaxed);
        }
        status
    }

    async fn hx_post(&self, client: &reqwest::Client, path: &str, form: &[(&str, &str)]) -> u16 {
        let res = client
            .post(format!("{}{path}", self.base))
            .header("hx-request", "true")
            .header("accept-language", "en")
            .form(form)
            .send()
            .await
            .unwrap();
        res.status().as_u16()
    }
}

/// Polls `instance` until its proxied answer has `status`; panics after the propagation bound.
async fn routed(instance: &Instance, client: &reqwest::Client, token: &str, status: u16, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        if instance.chat(client, token).await == status {
            return started.elapsed();
        }
        assert!(started.elapsed() < PROPAGATION, "{what}: not seen by the other instance within {PROPAGATION:?}");
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
}

fn query_i64(pool: &keypool::db::DbPool, sql: &'static str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = BigInt)]
        v: i64,
    }
    diesel::sql_query(sql).get_result::<V>(&mut pool.get().unwrap()).unwrap().v
}

fn lease_holder(pool: &keypool::db::DbPool) -> String {
    #[derive(diesel::QueryableByName)]
    struct H {
        #[diesel(sql_type = Text)]
        holder: String,
    }
    diesel::sql_query("SELECT holder FROM leases WHERE name = 'scheduled_check'")
        .get_results::<H>(&mut pool.get().unwrap())
        .unwrap()
        .pop()
        .map(|h| h.holder)
        .unwrap_or_default()
}

#[actix_web::test]
async fn two_instances_share_one_database() {
    let upstream = crate::mock::start();
    let (db, url) = TestDb::new();
    let env_url = TestDb::env_url(&url);
    // Both start at once on an empty database: they take turns on the migrations, one creates the
    // admin, neither fails.
    let (a, b) = (spawn(&env_url, &upstream.url), spawn(&env_url, &upstream.url));
    let mut a = listening(a).await;
    let mut b = listening(b).await;
    let pool = keypool::db::open(&url, 2).unwrap();
    let token = {
        let minted = keypool::domain::access_token::mint();
        keypool::db::access_keys::create(&mut pool.get().unwrap(), "cluster", &minted.hash, &minted.hint, 1).unwrap();
        minted.token
    };
    let summary = b.logs.lock().unwrap().iter().find(|l| l["fields"]["message"] == "keypool is listening").cloned();
    let fields = &summary.unwrap()["fields"];
    for field in ["database", "listen", "keys", "routable", "upstream", "instance"] {
        assert!(!fields[field].is_null(), "the start-up summary names {field}: {fields}");
    }
    assert_eq!(fields["upstream"], upstream.url.as_str());

    // A session made on A works on B (same KEYPOOL_SECRET; cookies do not depend on the port).
    let client = crate::support::new_client();
    let login = client
        .post(format!("{}/login", a.base))
        .form(&[("username", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    assert_eq!(client.get(format!("{}/admin", b.base)).send().await.unwrap().status(), 200);

    // A key imported and checked on A is routed by B.
    // An access key made elsewhere (here: the library, as the CLI does) is known to both within 5 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    while a.chat(&client, &token).await != 503 || b.chat(&client, &token).await != 503 {
        assert!(Instant::now() < deadline, "both instances learn the new access key");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let key = "sk-ok-30-clusterclusterclus";
    let form = [("keys", key), ("check_now", "on"), ("interval_secs", "0"), ("retries", "0")];
    assert_eq!(a.hx_post(&client, "/admin/keys/import", &form).await, 200);
    let took = routed(&b, &client, &token, 200, "an import and check on A").await;
    println!("import + check on A routed by B after {took:?}");
    let id = query_i64(&pool, "SELECT id AS v FROM keys");

    // Disabled on A: B stops routing it; enabled again: B routes it again.
    assert_eq!(a.hx_post(&client, &format!("/admin/keys/{id}/disable"), &[]).await, 200);
    let took = routed(&b, &client, &token, 503, "a disable on A").await;
    println!("disable on A seen by B after {took:?}");
    assert_eq!(a.hx_post(&client, &format!("/admin/keys/{id}/enable"), &[]).await, 200);
    assert_eq!(a.chat(&client, &token).await, 200, "the instance that made the change routes it at once");
    routed(&b, &client, &token, 200, "an enable on A").await;

    // Counters from both instances add up (written every 5 s).
    for _ in 0..5 {
        assert_eq!(a.chat(&client, &token).await, 200);
        assert_eq!(b.chat(&client, &token).await, 200);
    }
    let (sent, answered) = (SENT.load(Ordering::Relaxed), ANSWERED.load(Ordering::Relaxed));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let on_key = query_i64(&pool, "SELECT request_count AS v FROM keys");
        let on_access_key = query_i64(&pool, "SELECT request_count AS v FROM access_keys");
        if (on_key, on_access_key) == (answered, sent) {
            break;
        }
        assert!(on_key <= answered && on_access_key <= sent, "never more than was sent");
        assert!(
            Instant::now() < deadline,
            "counters of both instances add up: {on_key}/{answered}, {on_access_key}/{sent}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }

    // The schedule: wait until A holds the period, then kill A without warning; B takes over.
    let a_prefix = format!("{}-", a.pid());
    let b_prefix = format!("{}-", b.pid());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lease_holder(&pool).starts_with(&a_prefix) || a.claimed_periods().is_empty() {
        assert!(Instant::now() < deadline, "A never took the schedule's lease");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed_at = keypool::domain::clock::Clock::system().now_ms();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(lease_holder(&pool).starts_with(&b_prefix) && b.claimed_periods().iter().any(|end| *end > killed_at)) {
        assert!(Instant::now() < deadline, "B did not take the lease after A was killed");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    // Exactly once per period: a claim needs the previous period to have ended, so the ends of all
    // claims, from both instances, are at least one period apart.
    let mut ends: Vec<i64> = a.claimed_periods().into_iter().chain(b.claimed_periods()).collect();
    ends.sort_unstable();
    assert!(ends.len() >= 2, "{ends:?}");
    for pair in ends.windows(2) {
        assert!(pair[1] - pair[0] >= PERIOD_MS, "two instances ran the same period: {ends:?}");
    }
    // Each run records the pool when its check ends, which can be a moment after B claimed its period.
    let deadline = Instant::now() + Duration::from_secs(30);
    while query_i64(&pool, "SELECT COUNT(*) AS v FROM pool_snapshots") < 2 {
        assert!(Instant::now() < deadline, "scheduled checks ran and recorded the pool");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    let _ = Command::new("kill").args(["-TERM", &b.pid().to_string()]).status();
    let status = b.child.wait().unwrap();
    assert!(status.success(), "B exits 0 on SIGTERM");
    drop(pool);
    drop(db);
}
