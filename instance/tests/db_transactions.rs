//! Transactions whose caller goes away (a request whose client disconnected) against the
//! real PostgreSQL: a dropped `begin` must not leave a pooled connection inside a
//! transaction, where every later statement on it would join it and its locks would never
//! be released.

mod common;

use std::future::Future;
use std::time::Duration;

use common::*;
use fedi_config::{DatabaseConfig, Secret};
use fedi_server::db::Database;
use sqlx::PgPool;

/// One connection, so that every check runs on the connection the dropped `begin` used.
fn one_connection(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: Secret::new(url),
        replica_url: None,
        migration_url: None,
        password: None,
        max_connections: 1,
        replica_max_lag: Duration::from_secs(10),
    }
}

/// Polls `begin` `polls` times (its BEGIN in flight after the first) and drops it.
async fn give_up_on<F: Future>(begin: F, polls: usize) {
    let mut begin = std::pin::pin!(begin);
    for _ in 0..polls {
        if futures::poll!(begin.as_mut()).is_ready() {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Whether the pool's connection is inside a transaction begun before this statement (which
/// comes at least 5 ms later).
async fn left_in_a_transaction(pool: &PgPool) -> bool {
    tokio::time::sleep(Duration::from_millis(5)).await;
    sqlx::query_scalar(
        "SELECT query_start - xact_start > interval '2 milliseconds' \
         FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_begin_given_up_on_leaves_no_transaction_open() {
    let url = fresh_database().await;
    let db = Database::connect_lazy(&one_connection(&url)).unwrap();
    sqlx::query("SELECT 1").execute(db.primary()).await.unwrap();
    for attempt in 0..200 {
        give_up_on(db.begin(), 1 + attempt).await;
        assert!(
            !left_in_a_transaction(db.primary()).await,
            "attempt {attempt}: the connection was left inside the dropped transaction"
        );
    }
    // And the connection still works for a transaction of its own.
    let mut tx = db.begin().await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}
