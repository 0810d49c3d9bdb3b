//! A poll's end is notified on time by the worker: the job scheduled at the poll's end runs
//! then, not at the next minute's sweep. Real PostgreSQL, Redis and a `fedi-server worker`.

mod common;

use std::time::Duration;

use common::*;
use fedi_server::state::AppState;

/// Waits until the next whole minute is at least `margin` away, so that a window of
/// `margin` from now contains no minute boundary (the sweep's periods are aligned on them).
async fn away_from_a_minute_boundary(margin: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into_minute = Duration::from_millis((now.as_millis() % 60_000) as u64);
    if into_minute + margin >= Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(60) - into_minute + Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn an_ending_poll_notifies_its_voter_and_author_when_it_ends() {
    let db = migrated_database().await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let domain = unique_domain();
    let vars = [
        ("FEDI_DOMAIN", domain.as_str()),
        ("FEDI_DATABASE_URL", db.as_str()),
        ("FEDI_REDIS_URL", redis.as_str()),
    ];
    let config = config_from(&vars);
    let state = AppState::new(&config).unwrap();
    let _worker = start_worker(&db, &redis, &[("FEDI_DOMAIN", domain.as_str())]);

    let (author, _) = create_user(&db, "asker", "a long password 123").await;
    let (voter, _) = create_user(&db, "voter", "a long password 123").await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let (status,): (i64,) = sqlx::query_as(
        "INSERT INTO statuses (account_id, text) VALUES ($1, 'tea or coffee?') RETURNING id",
    )
    .bind(author)
    .fetch_one(&mut conn)
    .await
    .unwrap();

    let window = Duration::from_secs(15);
    away_from_a_minute_boundary(window).await;
    let (poll,): (i64,) = sqlx::query_as(
        "INSERT INTO polls (status_id, account_id, options, expires_at) \
         VALUES ($1, $2, ARRAY['tea', 'coffee'], now() + interval '2 seconds') RETURNING id",
    )
    .bind(status)
    .bind(author)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::query("INSERT INTO poll_votes (poll_id, account_id, choice) VALUES ($1, $2, 1)")
        .bind(poll)
        .bind(voter)
        .execute(&mut conn)
        .await
        .unwrap();
    fedi_server::tasks::polls::schedule(&state, status).await;

    let notified: Vec<(i64,)> = eventually(window, "the poll's end notified", || {
        let db = db.clone();
        async move {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
                .await
                .ok()?;
            let rows: Vec<(i64,)> = sqlx::query_as(
                "SELECT account_id FROM notifications WHERE type = 'poll' AND poll_id = $1 \
                 ORDER BY account_id",
            )
            .bind(poll)
            .fetch_all(&mut conn)
            .await
            .ok()?;
            (rows.len() == 2).then_some(rows)
        }
    })
    .await;
    let mut expected = vec![(author,), (voter,)];
    expected.sort();
    assert_eq!(notified, expected);

    // Not before its end.
    let early: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications n JOIN polls p ON p.id = n.poll_id \
         WHERE n.poll_id = $1 AND n.created_at < p.expires_at",
    )
    .bind(poll)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(early, 0, "notified before the poll ended");

    // Scheduling again (an edit) after the end notifies nobody twice.
    fedi_server::tasks::polls::schedule(&state, status).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE poll_id = $1")
        .bind(poll)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 2);
}
