//! Background work: an idle instance writes nothing, and `/healthz` and `/metrics` report each
//! background loop (a killed loop is restarted and counted; a loop stopped for good makes `/healthz` 503).

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use keypool::db::{AnyConnection, Backend};

use crate::support::{self, TestApp};

#[derive(diesel::QueryableByName)]
struct Number {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn change_seq(app: &TestApp) -> i64 {
    support::with_db(app, |c| keypool::db::usage::change_seq(c).unwrap()).await
}

async fn statuses(app: &TestApp) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Status {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let rows: Vec<Status> =
        support::with_db(app, |c| diesel::sql_query("SELECT status FROM keys ORDER BY id").load(c).unwrap()).await;
    rows.into_iter().map(|r| r.status).collect()
}

/// SQLite's count of commits by other connections, read on one connection held for the whole wait.
fn data_version(conn: &mut AnyConnection) -> i64 {
    diesel::sql_query("SELECT data_version AS n FROM pragma_data_version").get_result::<Number>(conn).unwrap().n
}

#[actix_web::test]
async fn an_idle_instance_writes_nothing() {
    let app = support::spawn().await;
    let ids = support::seed_active(&app, &[("sk-idle-a", 5.0), ("sk-idle-b", 5.0), ("sk-idle-c", 5.0)]).await;
    // Two keys cooled a moment ago; their cooling ends once the clock passes it.
    let until = app.state.now_ms() + 1_000;
    let cooled = format!("{}, {}", ids[0], ids[1]);
    support::with_db(&app, move |c| {
        c.batch_execute(&format!(
            "UPDATE keys SET status = 'cooling', cooling_until = {until}, status_reason = 'rate limited' \
             WHERE id IN ({cooled})"
        ))
        .unwrap();
    })
    .await;
    app.clock.advance(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(30);
    while statuses(&app).await.iter().any(|s| s != "active") {
        assert!(Instant::now() < deadline, "the writer ends the cooling: {:?}", statuses(&app).await);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }

    let before = change_seq(&app).await;
    let sqlite = app.state.backend == Backend::Sqlite;
    let pool = app.state.db.clone();
    let versions = actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        let first = sqlite.then(|| data_version(&mut conn));
        std::thread::sleep(Duration::from_secs(10));
        (first, sqlite.then(|| data_version(&mut conn)))
    })
    .await
    .unwrap();
    let after = change_seq(&app).await;
    assert_eq!(before, after, "an idle instance bumps change_seq ({before} → {after} in 10 s)");
    assert_eq!(versions.0, versions.1, "an idle instance commits nothing to the SQLite file in 10 s");
}
