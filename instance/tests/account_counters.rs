//! Account counters: followers and following are columns kept by triggers, not counts made
//! at each read, so every write path that changes follows (follow, unfollow, block, bulk
//! inserts, account deletion) must leave them equal to what counting finds; statuses and
//! the last status day (counted at read) must follow posts, reblogs and deletions.

mod common;

use common::*;
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

/// Accounts whose stored counters differ from a count of their rows.
async fn drifted(api: &TestApi) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT a.username FROM accounts a \
         WHERE a.followers_count <> (SELECT count(*) FROM follows f WHERE f.target_account_id = a.id) \
            OR a.following_count <> (SELECT count(*) FROM follows f WHERE f.account_id = a.id) \
         ORDER BY a.username",
    )
    .fetch_all(&mut api.conn().await)
    .await
    .unwrap()
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
    assert!(drifted(&api).await.is_empty());

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
    assert!(drifted(&api).await.is_empty());

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
    assert!(drifted(&api).await.is_empty());
}
