//! Helpers for tests against the real services of `make services-up`. A missing service is a
//! failure with instructions, never a silent skip.
#![allow(dead_code)] // each test binary uses a different subset

mod api;
mod config;
mod http;
mod s3;
mod worker;
// Not every test binary speaks HTTP, keeps media or runs workers.
#[allow(unused_imports)]
pub use api::*;
#[allow(unused_imports)]
pub use config::*;
#[allow(unused_imports)]
pub use http::*;
#[allow(unused_imports)]
pub use s3::*;
#[allow(unused_imports)]
pub use worker::*;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the test services with `make services-up` and run tests \
             through `make test-unit` (or `set -a; . .local/services.env; set +a` first)"
        )
    })
}

/// A new, empty database on the primary, so tests never see each other's rows.
pub async fn fresh_database() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let admin_url = service_env("FEDI_TEST_DATABASE_URL");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000
    );
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .expect("connect to the test primary");
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if !SWEPT.swap(true, Ordering::Relaxed) {
        drop_ended_runs(&mut conn).await;
    }
    // The name is built above from digits and a fixed prefix only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (base, _) = admin_url.rsplit_once('/').expect("database URL has a path");
    format!("{base}/{name}")
}

/// Drops the databases of test processes that have ended (`t_<pid>_...` of a pid no longer
/// running): once per test binary, before its first database. The one place test databases
/// go, for earlier runs and for this run's finished binaries alike: hundreds a run, about
/// 10 MB each and again on the standby, enough to fill a CI or developer disk.
async fn drop_ended_runs(conn: &mut sqlx::PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        r"SELECT datname FROM pg_database WHERE datname ~ '^t_[0-9]+_[0-9]+_[0-9]+$'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for name in names {
        let Some(pid) = name.split('_').nth(1) else {
            continue;
        };
        if pid == std::process::id().to_string() || std::path::Path::new("/proc").join(pid).exists()
        {
            continue;
        }
        // Another binary starting at the same moment may drop it first: either way it goes.
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut *conn)
        .await;
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `fedi-server` child process, killed when dropped so a failing test leaves nothing behind.
pub struct Server {
    pub child: Child,
    pub base_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn server_command(database_url: &str, redis_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fedi-server"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FEDI_DOMAIN", "test.example")
        .env("FEDI_DATABASE_URL", database_url)
        .env("FEDI_REDIS_URL", redis_url)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    cmd
}

pub async fn start_api(database_url: &str, redis_url: &str) -> Server {
    start_api_with(database_url, redis_url, &[]).await
}

pub async fn start_api_with(database_url: &str, redis_url: &str, env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let child = server_command(database_url, redis_url)
        .arg("api")
        .env("FEDI_LISTEN", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn fedi-server api");
    let server = Server {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
    };
    answers_health(&server, "fedi-server api").await;
    server
}

/// Waits until `server` answers `/health` (any status), or panics naming `what`.
pub async fn answers_health(server: &Server, what: &str) {
    let health = format!("{}/health", server.base_url);
    eventually(
        Duration::from_secs(20),
        &format!("{what} to answer /health"),
        || async { reqwest::get(&health).await.ok() },
    )
    .await;
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh database with every migration applied (the same code `fedi-server migrate` runs).
pub async fn migrated_database() -> String {
    let url = fresh_database().await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect to the fresh database");
    fedi_server::migrate::MIGRATOR
        .run(&mut conn)
        .await
        .expect("migrations apply");
    url
}

/// A running `api` on a migrated database and the test Redis, with `env` added.
pub async fn api_on_fresh_database(env: &[(&str, &str)]) -> (Server, String) {
    let db = migrated_database().await;
    let server = start_api_with(&db, &service_env("FEDI_TEST_REDIS_URL"), env).await;
    (server, db)
}

/// A local, confirmed, approved user; returns `(account_id, user_id)`.
pub async fn create_user(db: &str, username: &str, password: &str) -> (i64, i64) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    let (account_id,): (i64,) =
        sqlx::query_as("INSERT INTO accounts (username) VALUES ($1) RETURNING id")
            .bind(username)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let hash = fedi_server::auth::credentials::hash_password(password).unwrap();
    let (user_id,): (i64,) = sqlx::query_as(
        "INSERT INTO users (account_id, email, password_hash, confirmed_at) \
         VALUES ($1, $2, $3, now()) RETURNING id",
    )
    .bind(account_id)
    .bind(format!("{username}@test.example"))
    .bind(hash)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    (account_id, user_id)
}

/// A bearer token with `scopes` for `user_id` (None: an application token), issued to a
/// test application, without going through OAuth.
pub async fn issue_token(db: &str, user_id: Option<i64>, scopes: &str) -> String {
    use fedi_server::auth::credentials::{digest, new_secret};
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    let (app_id,): (i64,) = sqlx::query_as(
        "INSERT INTO oauth_applications (name, redirect_uris, scopes, client_id, client_secret_hash) \
         VALUES ('test', ARRAY['urn:ietf:wg:oauth:2.0:oob'], 'read write follow push', $1, $2) \
         RETURNING id",
    )
    .bind(new_secret())
    .bind(digest(&new_secret()))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let token = new_secret();
    sqlx::query(
        "INSERT INTO oauth_access_tokens (token_hash, application_id, user_id, scopes) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(digest(&token))
    .bind(app_id)
    .bind(user_id)
    .bind(scopes)
    .execute(&mut conn)
    .await
    .unwrap();
    token
}
