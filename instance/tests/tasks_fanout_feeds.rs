//! What fan-out of a plain status does to feeds in each state they can be in (it takes a
//! cheaper path than reblogs, see `tasks::timeline::feeds`): a full feed is trimmed back to
//! the cap, reblog tracking that falls past the falloff expires, a feed never built stays
//! unbuilt. Feeds are laid out straight in Redis, on a standalone server and the cluster.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fedi_server::redis_keys::Namespace;

/// Mastodon's `FeedManager::MAX_ITEMS`, as the server caps feeds.
const CAP: i64 = 400;
/// How far over the cap a feed may grow before fan-out trims it.
const SLACK: i64 = 32;

enum Conn {
    Standalone(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Conn {
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        match self {
            Conn::Standalone(c) => cmd.query_async(&mut c.clone()).await.unwrap(),
            Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await.unwrap(),
        }
    }

    async fn zadd(&self, key: &str, members: impl IntoIterator<Item = (i64, i64)>) {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(key);
        for (score, member) in members {
            cmd.arg(score).arg(member);
        }
        self.query::<i64>(&cmd).await;
    }

    async fn ids(&self, key: &str) -> Vec<i64> {
        self.query(redis::cmd("ZRANGE").arg(key).arg(0).arg(-1))
            .await
    }
}

async fn scenario(cluster: bool) {
    install_crypto_provider();
    let db = migrated_database().await;
    let domain = unique_domain();
    let mut env = vec![("FEDI_DOMAIN", domain.as_str())];
    let redis = if cluster {
        env.push(("FEDI_REDIS_MODE", "cluster"));
        service_env("FEDI_TEST_REDIS_CLUSTER_NODES")
    } else {
        service_env("FEDI_TEST_REDIS_URL")
    };
    let keys = Namespace::new(&domain);
    let api = start_api_with(&db, &redis, &env).await;
    let _worker = start_worker(&db, &redis, &env);
    let urls: Vec<&str> = redis.split(',').collect();
    let conn = if cluster {
        let client = redis::cluster::ClusterClient::new(urls).unwrap();
        Conn::Cluster(client.get_async_connection().await.unwrap())
    } else {
        let client = redis::Client::open(urls[0]).unwrap();
        Conn::Standalone(client.get_multiplexed_async_connection().await.unwrap())
    };

    let (author, author_user) = create_user(&db, "author", "a long password 123").await;
    let token = issue_token(&db, Some(author_user), "write").await;
    let mut followers = Vec::new();
    for name in ["full", "nearly", "tracking", "unbuilt"] {
        followers.push(create_user(&db, name, "a long password 123").await.0);
    }
    let mut pg = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO follows (account_id, target_account_id) SELECT f, $2 FROM unnest($1::bigint[]) f")
        .bind(&followers)
        .bind(author)
        .execute(&mut pg)
        .await
        .unwrap();
    let feed = |a: i64| keys.key(&format!("feed:home:{{{a}}}"));
    let reblogs = |a: i64| keys.key(&format!("feed:home:{{{a}}}:reblogs"));
    let [full, nearly, tracking, unbuilt] = followers[..] else {
        unreachable!()
    };
    // Small ids: older than anything the server creates now.
    conn.zadd(&feed(full), (1..=CAP + SLACK).map(|i| (i, i)))
        .await;
    conn.zadd(&feed(nearly), (1..=CAP).map(|i| (i, i))).await;
    // 40 statuses above reblog 999 of status 5: the reblog sits at the falloff edge, the
    // next status pushes it past, and its tracking (with another reblog of 5 it hid) goes.
    conn.zadd(&feed(tracking), (999..=1039).map(|i| (i, i)))
        .await;
    conn.zadd(&reblogs(tracking), [(999, 5)]).await;
    let extra = keys.key(&format!("feed:home:{{{tracking}}}:reblogs:5"));
    conn.query::<i64>(redis::cmd("SADD").arg(&extra).arg(998))
        .await;

    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/statuses", api.base_url))
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("status=plain")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status: serde_json::Value = resp.json().await.unwrap();
    let id: i64 = status["id"].as_str().unwrap().parse().unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut done = true;
        for a in [full, nearly, tracking] {
            done &= conn.ids(&feed(a)).await.contains(&id);
        }
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fan-out did not reach every feed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let ids = conn.ids(&feed(full)).await;
    assert_eq!(
        ids.len() as i64,
        CAP,
        "a feed past the slack is trimmed to the cap"
    );
    assert_eq!(ids[0], SLACK + 2, "the oldest entries go");
    assert_eq!(*ids.last().unwrap(), id);

    let ids = conn.ids(&feed(nearly)).await;
    assert_eq!(
        ids.len() as i64,
        CAP + 1,
        "within the slack, not trimmed yet"
    );
    assert_eq!((ids[0], *ids.last().unwrap()), (1, id));

    let tracked: Vec<i64> = conn.ids(&reblogs(tracking)).await;
    assert!(
        tracked.is_empty(),
        "tracking past the falloff expires: {tracked:?}"
    );
    let hidden: i64 = conn.query(redis::cmd("EXISTS").arg(&extra)).await;
    assert_eq!(hidden, 0, "with the reblogs it hid");
    assert_eq!(conn.ids(&feed(tracking)).await.len(), 42);

    let exists: i64 = conn.query(redis::cmd("EXISTS").arg(feed(unbuilt))).await;
    assert_eq!(exists, 0, "a feed never built is left to its rebuild");

    for a in [full, nearly, tracking] {
        conn.query::<i64>(redis::cmd("DEL").arg(feed(a))).await;
    }
}

#[tokio::test]
async fn fan_out_of_a_plain_status_trims_and_expires_tracking() {
    scenario(false).await;
}

#[tokio::test]
async fn fan_out_of_a_plain_status_trims_and_expires_tracking_on_a_redis_cluster() {
    scenario(true).await;
}
