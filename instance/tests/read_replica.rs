//! Reads on the streaming hot standby of `make services-up`, and the fall back to the primary
//! when the standby is gone or lagging.
//!
//! One test pauses the shared standby's replay. It keeps the pause under 3 s and always
//! resumes, since other tests (here and in other processes) wait up to 10 s for replication.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fedi_config::{DatabaseConfig, Secret};
use fedi_server::db::Database;
use sqlx::{Connection, PgConnection, PgPool};

fn config(primary: &str, replica: &str, max_lag: Duration) -> DatabaseConfig {
    DatabaseConfig {
        url: Secret::new(primary),
        replica_url: Some(Secret::new(replica)),
        migration_url: None,
        password: None,
        max_connections: 4,
        replica_max_lag: max_lag,
    }
}

/// A fresh database on the primary, once the standby has replayed its creation: the URLs of
/// both.
async fn replicated_database() -> (String, String) {
    let primary = fresh_database().await;
    let (_, name) = primary.rsplit_once('/').unwrap();
    let standby = service_env("FEDI_TEST_DATABASE_REPLICA_URL");
    let (base, _) = standby.rsplit_once('/').unwrap();
    let replica = format!("{base}/{name}");
    eventually(
        Duration::from_secs(10),
        "the new database on the standby",
        || async { PgConnection::connect(&replica).await.ok() },
    )
    .await;
    (primary, replica)
}

async fn in_recovery(pool: &PgPool) -> bool {
    sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn standby_in_use(db: &Database, within: Duration) {
    eventually(within, "reads to use the standby", || {
        std::future::ready(db.replica_in_use().then_some(()))
    })
    .await;
}

#[tokio::test]
async fn reads_go_to_the_standby_and_writes_to_the_primary() {
    let (primary, replica) = replicated_database().await;
    let db = Database::connect_lazy(&config(&primary, &replica, Duration::from_secs(10))).unwrap();
    standby_in_use(&db, Duration::from_secs(10)).await;
    assert!(in_recovery(db.reader()).await, "reader() is the standby");
    assert!(!in_recovery(db.primary()).await, "primary() is the primary");

    sqlx::query("CREATE TABLE notes (body text)")
        .execute(db.primary())
        .await
        .unwrap();
    sqlx::query("INSERT INTO notes VALUES ('hello')")
        .execute(db.primary())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the row on the standby",
        || async {
            sqlx::query_scalar::<_, String>("SELECT body FROM notes")
                .fetch_optional(db.reader())
                .await
                .ok()
                .flatten()
        },
    )
    .await;
    let err = sqlx::query("INSERT INTO notes VALUES ('nope')")
        .execute(db.reader())
        .await
        .expect_err("the standby is read-only");
    assert!(err.to_string().contains("read-only"), "{err}");
}

#[tokio::test]
async fn the_separate_password_reaches_the_standby_too() {
    let with_wrong_password = |var| service_env(var).replacen(":fedi@", ":wrong@", 1);
    let primary = with_wrong_password("FEDI_TEST_DATABASE_URL");
    let replica = with_wrong_password("FEDI_TEST_DATABASE_REPLICA_URL");
    assert!(
        replica.contains(":wrong@"),
        "the test URL carries a password"
    );
    let db = Database::connect_lazy(&DatabaseConfig {
        password: Some(Secret::new("fedi")),
        ..config(&primary, &replica, Duration::from_secs(10))
    })
    .unwrap();
    standby_in_use(&db, Duration::from_secs(10)).await;
    assert!(in_recovery(db.reader()).await);
}

#[tokio::test]
async fn a_lost_standby_costs_reads_nothing() {
    // Refused: nothing listens. Silent: the TCP handshake succeeds but PostgreSQL never
    // answers, like a hung host.
    let refused = free_port();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = silent.local_addr().unwrap().port();
    let primary = service_env("FEDI_TEST_DATABASE_URL");
    let reads_stay_on_the_primary = |port: u16| {
        let primary = primary.clone();
        async move {
            let replica = format!("postgres://fedi:fedi@127.0.0.1:{port}/fedi");
            let db = Database::connect_lazy(&config(&primary, &replica, Duration::from_secs(10)))
                .unwrap();
            // Before the first check, and across several that fail or time out.
            for round in 0..4 {
                let started = Instant::now();
                assert!(!in_recovery(db.reader()).await, "port {port}: the primary");
                let took = started.elapsed();
                // The first read also opens the primary's first connection (SCRAM in an
                // unoptimised build); waiting on the standby would take 3 s or forever.
                let limit = Duration::from_millis(if round == 0 { 2000 } else { 500 });
                assert!(
                    took < limit,
                    "port {port}, round {round}: a read took {took:?}"
                );
                assert!(!db.replica_in_use());
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        }
    };
    tokio::join!(
        reads_stay_on_the_primary(refused),
        reads_stay_on_the_primary(silent)
    );
}

#[tokio::test]
async fn a_lagging_standby_is_left_until_it_catches_up() {
    // Another test process (several sessions share the services) may pause the standby too.
    let mut lock = PgConnection::connect(&service_env("FEDI_TEST_DATABASE_URL"))
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtext('fedi-tests: standby replay pause'))")
        .execute(&mut lock)
        .await
        .unwrap();
    let mut standby = PgConnection::connect(&service_env("FEDI_TEST_DATABASE_REPLICA_URL"))
        .await
        .unwrap();
    // Heals a pause left by a run that was killed before it could resume.
    resume(&mut standby).await;

    let (primary, replica) = replicated_database().await;
    let bound = Duration::from_millis(200);
    let db = Database::connect_lazy(&config(&primary, &replica, bound)).unwrap();
    standby_in_use(&db, Duration::from_secs(10)).await;
    sqlx::query("CREATE TABLE notes (body text)")
        .execute(db.primary())
        .await
        .unwrap();

    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut standby)
        .await
        .unwrap();
    let paused = Instant::now();
    // A panic inside the task still lets the resume below run.
    let while_paused = tokio::spawn({
        let db = db.clone();
        async move {
            sqlx::query("INSERT INTO notes VALUES ('written during the pause')")
                .execute(db.primary())
                .await
                .unwrap();
            eventually(
                Duration::from_millis(2500),
                "reads to leave the lagging standby",
                || std::future::ready((!db.replica_in_use()).then_some(())),
            )
            .await;
            assert!(!in_recovery(db.reader()).await);
            let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
                .fetch_one(db.reader())
                .await
                .unwrap();
            assert_eq!(seen, 1, "reads see the write the standby has not replayed");
        }
    })
    .await;
    resume(&mut standby).await;
    let paused_for = paused.elapsed();
    if let Err(e) = while_paused {
        std::panic::resume_unwind(e.into_panic());
    }
    assert!(paused_for < Duration::from_secs(3), "paused {paused_for:?}");

    standby_in_use(&db, Duration::from_secs(10)).await;
    assert!(in_recovery(db.reader()).await);
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(seen, 1, "the standby has caught up");
    lock.close().await.unwrap();
}

async fn resume(standby: &mut PgConnection) {
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(standby)
        .await
        .expect("resume replay on the shared standby");
}

#[tokio::test]
async fn a_lost_standby_keeps_the_api_ready_and_is_logged_once_without_its_password() {
    use std::io::Read;
    let db = fresh_database().await;
    let port = free_port();
    let dead_replica = format!(
        "postgres://fedi:s3cret-replica@127.0.0.1:{}/fedi",
        free_port()
    );
    let mut child = server_command(&db, &service_env("FEDI_TEST_REDIS_URL"))
        .arg("api")
        .env("FEDI_LISTEN", format!("127.0.0.1:{port}"))
        .env("FEDI_DATABASE_REPLICA_URL", &dead_replica)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let server = Server {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
    };
    let readyz = format!("{}/readyz", server.base_url);
    let ready = eventually(Duration::from_secs(20), "/readyz to answer", || async {
        reqwest::get(&readyz).await.ok()
    })
    .await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");

    // Several failed checks, one log line.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    drop(server);
    let mut log = String::new();
    stdout.read_to_string(&mut log).unwrap();
    assert_eq!(
        log.matches("read replica not used").count(),
        1,
        "one warning per transition: {log}"
    );
    assert!(
        !log.contains("s3cret-replica"),
        "the password leaked: {log}"
    );
}
