//! Two instances on one Redis (standalone and the 6-node cluster), as a hosting provider's
//! external Redis has them: each with its own database and domain, and one account id
//! on both. A public post of one never reaches a public-stream client of the
//! other; the same account id keeps two home feeds and two sets of rate-limit counters; and
//! every key the scenario leaves on Redis is within an instance's namespace.

mod common;
#[path = "streaming/support.rs"]
mod support;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use fedi_server::events::channel::{self, Scope};
use fedi_server::state::AppState;
use serde_json::Value;
use support::{Auth, Ws, app_state_of, redis_env, start_streamer, until_subscribed};

const WAIT: Duration = Duration::from_secs(20);

struct Tenant {
    domain: String,
    api: Server,
    _worker: Server,
    streamer: Server,
    state: AppState,
    alice: i64,
    token: String,
}

/// Account ids are snowflakes: `alice` takes the id given, so that both instances have it.
async fn tenant(
    redis: &str,
    mode: &[(&'static str, &'static str)],
    cluster: bool,
    alice: Option<i64>,
) -> Tenant {
    let db = migrated_database().await;
    let domain = unique_domain();
    let mut env = vec![("FEDI_DOMAIN", domain.as_str())];
    env.extend_from_slice(mode);
    let api = start_api_with(&db, redis, &env).await;
    let worker = start_worker(&db, redis, &env);
    let streamer = start_streamer(&db, redis, &env).await;
    let (alice, user) = match alice {
        None => create_user(&db, "alice", "a long password 123").await,
        Some(id) => same_account(&db, id).await,
    };
    let token = issue_token(&db, Some(user), "read write").await;
    Tenant {
        state: app_state_of(&domain, &db, redis, cluster),
        domain,
        api,
        _worker: worker,
        streamer,
        alice,
        token,
    }
}

async fn same_account(db: &str, id: i64) -> (i64, i64) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    let user: i64 = sqlx::query_scalar(
        "WITH a AS (INSERT INTO accounts (id, username) VALUES ($1, 'alice') RETURNING id) \
         INSERT INTO users (account_id, email, password_hash, confirmed_at) \
         SELECT id, 'alice@mail.example', 'x', now() FROM a RETURNING id",
    )
    .bind(id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    (id, user)
}

/// Every key on every node (a cluster's replicas included: SCAN runs on the node asked).
async fn all_keys(redis: &str) -> HashSet<String> {
    let mut keys = HashSet::new();
    for url in redis.split(',') {
        let client = redis::Client::open(url.trim()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    keys
}

fn http() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}

/// Loopback clients are never limited: the test names a client address that only this run
/// uses (documentation range), the same on both instances.
fn client_ip() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "2001:db8:{:x}:{:x}::9",
        std::process::id() as u16,
        nanos as u16
    )
}

async fn post(t: &Tenant, text: &str, ip: &str) -> String {
    let resp = http()
        .post(format!("{}/api/v1/statuses", t.api.base_url))
        .bearer_auth(&t.token)
        .header("x-forwarded-for", ip)
        .header("idempotency-key", "same-key-on-both")
        .json(&serde_json::json!({"status": text, "visibility": "public"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

async fn home(t: &Tenant) -> Vec<String> {
    let resp = http()
        .get(format!("{}/api/v1/timelines/home", t.api.base_url))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["content"].as_str().unwrap().to_string())
        .collect()
}

/// X-RateLimit-Remaining of an anonymous API call from `ip`.
async fn remaining(t: &Tenant, ip: &str) -> u64 {
    let resp = http()
        .get(format!("{}/api/v1/timelines/public", t.api.base_url))
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.headers()["x-ratelimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn public_client(t: &Tenant) -> Ws {
    let mut ws = Ws::connect(
        &t.streamer.base_url,
        "stream=public",
        Auth::Header(&t.token),
    )
    .await
    .unwrap();
    let public = channel::public(Scope::All, false);
    until_subscribed(&mut ws, &t.state, &public, WAIT).await;
    ws
}

/// The contents of the `update` events `ws` receives within `within`.
async fn updates(ws: &mut Ws, within: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    while let Some(frame) = ws
        .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        if frame["event"] == "update" {
            let status: Value = serde_json::from_str(frame["payload"].as_str().unwrap()).unwrap();
            out.push(status["content"].as_str().unwrap().to_string());
        }
    }
    out
}

async fn two_instances_share_one_redis(cluster: bool) {
    let (redis, mode) = redis_env(cluster);
    let before = all_keys(&redis).await;
    let a = tenant(&redis, &mode, cluster, None).await;
    let b = tenant(&redis, &mode, cluster, Some(a.alice)).await;

    // Both home feeds built (empty) before anything is posted.
    assert!(home(&a).await.is_empty());
    assert!(home(&b).await.is_empty());
    let mut on_a = public_client(&a).await;
    let mut on_b = public_client(&b).await;

    let ip = client_ip();
    let text_a = format!("only on {}", a.domain);
    post(&a, &text_a, &ip).await;
    let seen_a = updates(&mut on_a, Duration::from_secs(5)).await;
    assert!(
        seen_a.iter().any(|c| c.contains(&text_a)),
        "A's own public stream carries its post: {seen_a:?}"
    );
    let seen_b = updates(&mut on_b, Duration::from_secs(2)).await;
    assert!(seen_b.is_empty(), "B's public stream got {seen_b:?}");

    // The same Idempotency-Key by the same account id on B makes a new status there.
    let text_b = format!("only on {}", b.domain);
    post(&b, &text_b, &ip).await;
    let contains = |feed: &[String], text: &str| feed.iter().any(|c| c.contains(text));
    let feed_a = eventually(WAIT, "A's post in A's home", || async {
        let f = home(&a).await;
        contains(&f, &text_a).then_some(f)
    })
    .await;
    let feed_b = eventually(WAIT, "B's post in B's home", || async {
        let f = home(&b).await;
        contains(&f, &text_b).then_some(f)
    })
    .await;
    assert!(!contains(&feed_a, &text_b), "A's home: {feed_a:?}");
    assert!(!contains(&feed_b, &text_a), "B's home: {feed_b:?}");
    assert_eq!((feed_a.len(), feed_b.len()), (1, 1));

    // One client address, counted apart on each instance.
    let first_a = remaining(&a, &ip).await;
    remaining(&a, &ip).await;
    assert_eq!(remaining(&a, &ip).await, first_a - 2);
    let first_b = remaining(&b, &ip).await;
    assert!(
        first_b > first_a - 2,
        "B counts A's calls: {first_b} vs {first_a}"
    );

    // Every key the scenario left is an instance's: its namespace or its job queues.
    let after = all_keys(&redis).await;
    let new: Vec<&String> = after.difference(&before).collect();
    let stray: Vec<&&String> = new
        .iter()
        .filter(|k| !k.starts_with("fedi:") && !k.starts_with("{fedi:jobs:"))
        .collect();
    assert!(stray.is_empty(), "keys outside any namespace: {stray:?}");
    for t in [&a, &b] {
        let ns = t.state.redis.keys();
        let home = ns.key(&format!("feed:home:{{{}}}", t.alice));
        assert!(after.contains(&home), "{home} exists");
        let of_t = |part: &str| {
            new.iter()
                .any(|k| k.starts_with(&ns.key(part)) && ns.owns(k))
        };
        assert!(of_t("ratelimit:"), "{}'s rate limits", t.domain);
        assert!(of_t("idempotency:"), "{}'s idempotency key", t.domain);
    }
}

#[tokio::test]
async fn instances_on_one_standalone_redis_stay_apart() {
    two_instances_share_one_redis(false).await;
}

#[tokio::test]
async fn instances_on_one_redis_cluster_stay_apart() {
    two_instances_share_one_redis(true).await;
}
