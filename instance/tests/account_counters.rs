//! Account counters: followers and following are columns kept by triggers, not counts made
//! at each read, so every write path that changes follows (follow, unfollow, block, bulk
//! inserts, account deletion) must leave them equal to what counting finds. Statuses are
//! counted by changes a trigger appends and the worker folds (`tasks::statuses_count`): the
//! count shown must be exact before and after a fold, and a post must never wait for
//! another post of its author. The last status day (read at render) follows posts, reblogs
//! and deletions.

mod common;

use std::time::Duration;

use common::*;
use fedi_server::tasks::statuses_count::fold;
use serde_json::Value;

async fn act(api: &TestApi, token: &str, method: &str, path: &str) {
    api.call(method, path, Some(token), Body::None)
        .await
        .expect(200);
}

/// (followers, following, statuses, last_status_at) as the API shows the account.
async fn shown(api: &TestApi, id: i64) -> (i64, i64, i64, Value) {
    let a = api
        .call("GET", &format!("/api/v1/accounts/{id}"), None, Body::None)
        .await
        .expect(200)
        .json();
    (
        a["followers_count"].as_i64().unwrap(),
        a["following_count"].as_i64().unwrap(),
        a["statuses_count"].as_i64().unwrap(),
        a["last_status_at"].clone(),
    )
}

/// Accounts whose stored counters (with the status count's pending changes) differ from a
/// count of their rows.
async fn drifted(db: &str) -> Vec<String> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT a.username FROM accounts a \
         WHERE a.followers_count <> (SELECT count(*) FROM follows f WHERE f.target_account_id = a.id) \
            OR a.following_count <> (SELECT count(*) FROM follows f WHERE f.account_id = a.id) \
            OR a.statuses_count + coalesce((SELECT sum(c.delta) FROM account_statuses_count_changes c \
                                            WHERE c.account_id = a.id), 0) \
               <> (SELECT count(*) FROM statuses s WHERE s.account_id = a.id) \
         ORDER BY a.username",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

/// Status count changes not folded yet.
async fn pending(db: &str) -> i64 {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT count(*) FROM account_statuses_count_changes")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// Folds every pending status count change, as the worker's periodic job does.
async fn fold_now(db: &str) -> u64 {
    let pool = sqlx::PgPool::connect(db).await.unwrap();
    let folded = fold(&pool).await.expect("fold");
    pool.close().await;
    folded
}

fn today() -> Value {
    Value::String(
        sqlx::types::chrono::Utc::now()
            .format("%Y-%m-%d")
            .to_string(),
    )
}

#[tokio::test]
async fn counters_follow_every_write_path() {
    let api = TestApi::start().await;
    let (alice_id, alice) = api.token_user("alice").await;
    let (bob_id, bob) = api.token_user("bob").await;
    let (carol_id, carol) = api.token_user("carol").await;
    assert_eq!(shown(&api, alice_id).await, (0, 0, 0, Value::Null));

    // Follows, both ways, from several accounts.
    for target in [bob_id, carol_id] {
        act(
            &api,
            &alice,
            "POST",
            &format!("/api/v1/accounts/{target}/follow"),
        )
        .await;
    }
    act(
        &api,
        &bob,
        "POST",
        &format!("/api/v1/accounts/{alice_id}/follow"),
    )
    .await;
    act(
        &api,
        &carol,
        "POST",
        &format!("/api/v1/accounts/{alice_id}/follow"),
    )
    .await;
    assert_eq!(shown(&api, alice_id).await, (2, 2, 0, Value::Null));
    assert_eq!(shown(&api, bob_id).await, (1, 1, 0, Value::Null));

    // Statuses and a reblog (a status of its author too, as counting found it).
    let first = api.post_public(&alice, "first").await;
    let second = api.post_public(&alice, "second").await;
    act(
        &api,
        &bob,
        "POST",
        &format!("/api/v1/statuses/{first}/reblog"),
    )
    .await;
    assert_eq!(shown(&api, alice_id).await, (2, 2, 2, today()));
    assert_eq!(shown(&api, bob_id).await, (1, 1, 1, today()));
    act(
        &api,
        &bob,
        "POST",
        &format!("/api/v1/statuses/{first}/unreblog"),
    )
    .await;
    assert_eq!(shown(&api, bob_id).await.2, 0);
    assert!(drifted(&api.db).await.is_empty());

    // Deleting a status cascades to its reblogs: both authors' counts drop.
    act(
        &api,
        &bob,
        "POST",
        &format!("/api/v1/statuses/{second}/reblog"),
    )
    .await;
    assert_eq!(shown(&api, bob_id).await.2, 1);
    act(
        &api,
        &alice,
        "DELETE",
        &format!("/api/v1/statuses/{second}"),
    )
    .await;
    assert_eq!(shown(&api, alice_id).await, (2, 2, 1, today()));
    assert_eq!(shown(&api, bob_id).await, (1, 1, 0, Value::Null));
    // The last status gone, the account shows no last status day again.
    act(&api, &alice, "DELETE", &format!("/api/v1/statuses/{first}")).await;
    assert_eq!(shown(&api, alice_id).await, (2, 2, 0, Value::Null));

    // Unfollowing, and a block removing the follows both ways.
    act(
        &api,
        &carol,
        "POST",
        &format!("/api/v1/accounts/{alice_id}/unfollow"),
    )
    .await;
    assert_eq!(shown(&api, alice_id).await.0, 1);
    act(
        &api,
        &bob,
        "POST",
        &format!("/api/v1/accounts/{alice_id}/block"),
    )
    .await;
    assert_eq!(shown(&api, alice_id).await, (0, 1, 0, Value::Null));
    assert_eq!(shown(&api, bob_id).await, (0, 0, 0, Value::Null));
    assert!(drifted(&api.db).await.is_empty());

    // Folding the status count changes changes no count shown.
    assert!(pending(&api.db).await > 0);
    assert!(fold_now(&api.db).await > 0);
    assert_eq!(pending(&api.db).await, 0);
    assert_eq!(shown(&api, alice_id).await, (0, 1, 0, Value::Null));
    assert!(drifted(&api.db).await.is_empty());

    // Bulk inserts (as the benchmark seed and backfills write) and an account deletion
    // (its follows and statuses go by cascade).
    let mut db = api.conn().await;
    sqlx::query(
        "INSERT INTO statuses (account_id, text, content_html) \
         SELECT a.id, 'bulk', '<p>bulk</p>' FROM accounts a, generate_series(1, 3)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO follows (account_id, target_account_id) \
         SELECT f.id, t.id FROM accounts f, accounts t \
         WHERE f.id <> t.id ON CONFLICT DO NOTHING",
    )
    .execute(&mut db)
    .await
    .unwrap();
    assert_eq!(shown(&api, carol_id).await, (2, 2, 3, today()));
    sqlx::query("DELETE FROM accounts WHERE id = $1")
        .bind(bob_id)
        .execute(&mut db)
        .await
        .unwrap();
    assert_eq!(shown(&api, carol_id).await, (1, 1, 3, today()));
    assert_eq!(shown(&api, alice_id).await, (1, 1, 3, today()));
    assert!(drifted(&api.db).await.is_empty());

    // The deleted account's changes (its statuses' cascade) are dropped by the fold.
    fold_now(&api.db).await;
    assert_eq!(pending(&api.db).await, 0);
    assert_eq!(shown(&api, carol_id).await, (1, 1, 3, today()));
    assert!(drifted(&api.db).await.is_empty());
}

/// A post of an author whose other post is still in its transaction goes through at once,
/// and a fold meanwhile neither waits for that transaction nor loses its change.
#[tokio::test]
async fn a_post_waits_for_no_other_post_of_its_author() {
    let api = TestApi::start().await;
    let (alice_id, alice) = api.token_user("alice").await;
    api.post_public(&alice, "committed").await;

    let mut open = api.conn().await;
    sqlx::query("BEGIN").execute(&mut open).await.unwrap();
    sqlx::query(
        "INSERT INTO statuses (account_id, text, content_html) VALUES ($1, 'open', '<p>open</p>')",
    )
    .bind(alice_id)
    .execute(&mut open)
    .await
    .unwrap();

    tokio::time::timeout(
        Duration::from_secs(10),
        api.post_public(&alice, "meanwhile"),
    )
    .await
    .expect("a post waited for another post of its author");
    tokio::time::timeout(Duration::from_secs(10), fold_now(&api.db))
        .await
        .expect("a fold waited for a posting transaction");
    assert_eq!(shown(&api, alice_id).await.2, 2);

    sqlx::query("COMMIT").execute(&mut open).await.unwrap();
    assert_eq!(shown(&api, alice_id).await.2, 3);
    fold_now(&api.db).await;
    assert_eq!(pending(&api.db).await, 0);
    assert_eq!(shown(&api, alice_id).await.2, 3);
    assert!(drifted(&api.db).await.is_empty());
}

/// Posts and deletions from several connections while folds run: no change is lost or
/// counted twice, before the last fold or after it.
#[tokio::test]
async fn counts_stay_exact_while_posts_race_folds() {
    let api = TestApi::start().await;
    let (alice_id, alice) = api.token_user("alice").await;
    let (posters, each) = (4, 15);
    let folding = {
        let db = api.db.clone();
        tokio::spawn(async move {
            let pool = sqlx::PgPool::connect(&db).await.unwrap();
            let mut folds = 0;
            loop {
                fold(&pool).await.expect("fold");
                folds += 1;
                if folds >= 1_000 {
                    return folds;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let posts = (0..posters).map(|p| {
        let (api, alice) = (&api, &alice);
        async move {
            let mut ids = Vec::new();
            for n in 0..each {
                ids.push(api.post_public(alice, &format!("post {p}-{n}")).await);
            }
            // Every third one deleted again.
            for id in ids.iter().step_by(3) {
                act(api, alice, "DELETE", &format!("/api/v1/statuses/{id}")).await;
            }
            ids.len() - ids.iter().step_by(3).count()
        }
    });
    let kept: usize = futures::future::join_all(posts).await.into_iter().sum();
    assert_eq!(shown(&api, alice_id).await.2, kept as i64);
    folding.abort();
    fold_now(&api.db).await;
    assert_eq!(pending(&api.db).await, 0);
    assert_eq!(shown(&api, alice_id).await.2, kept as i64);
    assert!(drifted(&api.db).await.is_empty());
}

/// The worker folds pending changes by itself, every few seconds.
#[tokio::test]
async fn the_worker_folds_pending_changes() {
    let db = migrated_database().await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let author: i64 =
        sqlx::query_scalar("INSERT INTO accounts (username) VALUES ('prolific') RETURNING id")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO statuses (account_id, text, content_html) \
         SELECT $1, 'bulk', '<p>bulk</p>' FROM generate_series(1, 250)",
    )
    .bind(author)
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(pending(&db).await, 1, "one change per author and statement");

    let domain = unique_domain();
    let worker = start_worker(
        &db,
        &service_env("FEDI_TEST_REDIS_URL"),
        &[("FEDI_DOMAIN", domain.as_str())],
    );
    answers_health(&worker, "the worker").await;
    eventually(Duration::from_secs(40), "the worker to fold", || async {
        (pending(&db).await == 0).then_some(())
    })
    .await;
    let stored: i64 = sqlx::query_scalar("SELECT statuses_count FROM accounts WHERE id = $1")
        .bind(author)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, 250);
}
