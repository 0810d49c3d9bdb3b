//! Fan-out at scale: a status of an account with 1,000 local followers (feeds built) reaches
//! every feed and every follower's stream through one `fedi-server worker`; the test prints
//! how long that took after the POST returned (the figure the issue's closing note asks for,
//! at the worker's side).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;

const FOLLOWERS: i64 = 1000;

#[tokio::test]
async fn a_status_reaches_a_thousand_followers_feeds_and_streams() {
    install_crypto_provider();
    let db = migrated_database().await;
    let redis_url = service_env("FEDI_TEST_REDIS_URL");
    let domain = unique_domain();
    let env = [("FEDI_DOMAIN", domain.as_str())];
    let keys = fedi_server::redis_keys::Namespace::new(&domain);
    let api = start_api_with(&db, &redis_url, &env).await;
    let _worker = start_worker(&db, &redis_url, &env);
    let (author, author_user) = create_user(&db, "author", "a long password 123").await;
    let token = issue_token(&db, Some(author_user), "write").await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let followers: Vec<i64> = sqlx::query_scalar(
        "WITH a AS (INSERT INTO accounts (username) \
                    SELECT 'f' || g FROM generate_series(1, $1) g RETURNING id, username), \
              u AS (INSERT INTO users (account_id, email, password_hash, confirmed_at) \
                    SELECT id, username || '@mail.example', 'x', now() FROM a), \
              f AS (INSERT INTO follows (account_id, target_account_id) \
                    SELECT id, $2 FROM a) \
         SELECT id FROM a",
    )
    .bind(FOLLOWERS)
    .bind(author)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    // Built (empty) feeds, as after each follower's first read of home, and a home stream
    // open for each (the streamer's `subscribed:` mark: fan-out publishes only where one is).
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut pipe = redis::pipe();
    for f in &followers {
        pipe.cmd("ZADD")
            .arg(keys.key(&format!("feed:home:{{{f}}}")))
            .arg(0)
            .arg(0)
            .ignore();
        pipe.cmd("SET")
            .arg(keys.key(&format!("subscribed:timeline:{f}")))
            .arg(1)
            .arg("EX")
            .arg(600)
            .ignore();
    }
    pipe.query_async::<()>(&mut c).await.unwrap();

    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.psubscribe(keys.channel("timeline:*")).await.unwrap();
    let mut messages = pubsub.into_on_message();

    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/statuses", api.base_url))
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("status=to+all+of+you")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let posted = started.elapsed();
    let status: serde_json::Value = resp.json().await.unwrap();
    let id = status["id"].as_str().unwrap().to_string();

    let wanted: HashSet<String> = followers
        .iter()
        .map(|f| keys.channel(&format!("timeline:{f}")))
        .collect();
    let mut seen = HashSet::new();
    let mut first = None;
    let deadline = Duration::from_secs(60);
    while seen.len() < wanted.len() {
        let m = tokio::time::timeout(deadline, messages.next())
            .await
            .expect("events keep coming")
            .unwrap();
        let channel = m.get_channel_name().to_string();
        let body: serde_json::Value =
            serde_json::from_str(&m.get_payload::<String>().unwrap()).unwrap();
        let payload: serde_json::Value =
            serde_json::from_str(body["payload"].as_str().unwrap()).unwrap();
        if body["event"] == "update" && payload["id"] == id.as_str() && wanted.contains(&channel) {
            first.get_or_insert(started.elapsed());
            seen.insert(channel);
        }
    }
    let last = started.elapsed();

    let mut pipe = redis::pipe();
    for f in &followers {
        pipe.cmd("ZSCORE")
            .arg(keys.key(&format!("feed:home:{{{f}}}")))
            .arg(&id);
    }
    let scores: Vec<Option<f64>> = pipe.query_async(&mut c).await.unwrap();
    assert!(scores.iter().all(Option::is_some), "every feed holds it");
    println!(
        "fan-out to {FOLLOWERS} followers: POST answered in {posted:?}, first update event \
         after {:?}, last after {last:?}",
        first.unwrap()
    );
    for f in &followers {
        let _: () = redis::cmd("DEL")
            .arg(keys.key(&format!("feed:home:{{{f}}}")))
            .query_async(&mut c)
            .await
            .unwrap();
    }
}
