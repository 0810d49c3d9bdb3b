//! The fetch budget of one incoming activity (`fetch::budget`): a reply's unknown parents
//! are fetched and stored with it, but a peer chaining replies without end gets at most
//! `PER_ACTIVITY` fetches, after which the activity fails for good (a dead job naming the
//! limit, no retries) instead of keeping a worker fetching.

mod common;
mod peer;

use std::time::Duration;

use common::*;
use fedi_server::federation::fetch::budget::PER_ACTIVITY;
use peer::*;
use serde_json::{Value, json};

/// Publishes `count` Notes by `actor` under `prefix`, each replying to the one before;
/// returns the last one.
fn chain(peer: &Peer, host: &str, prefix: &str, actor: &str, count: usize) -> Value {
    let mut last = Value::Null;
    for i in 0..count {
        let id = format!("http://{host}/{prefix}/{i}");
        let note = json!({
            "@context": AS, "id": id, "type": "Note", "attributedTo": actor,
            "content": format!("<p>reply {i}</p>"), "to": [format!("{AS}#Public")],
            "inReplyTo": if i == 0 { Value::Null } else {
                json!(format!("http://{host}/{prefix}/{}", i - 1))
            },
            "published": "2024-05-01T00:00:00Z",
        });
        peer.put(&id, note.clone());
        last = note;
    }
    last
}

fn create(actor: &str, note: &Value) -> Value {
    json!({
        "@context": AS, "id": format!("{}/activity", note["id"].as_str().unwrap()),
        "type": "Create", "actor": actor, "object": note,
    })
}

async fn stored(pg: &sqlx::PgPool, prefix: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM statuses WHERE uri LIKE $1")
        .bind(format!("{prefix}%"))
        .fetch_one(pg)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reply_chains_are_followed_within_the_fetch_budget_only() {
    install_crypto_provider();
    let peer = Peer::start().await;
    let db = migrated_database().await;
    let domain = unique_domain();
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let env = [
        ("FEDI_DOMAIN", domain.as_str()),
        ("FEDI_FEDERATION_ALLOW_LOOPBACK", "true"),
    ];
    let api = start_api_with(&db, &redis, &env).await;
    let _worker = start_worker(&db, &redis, &env);
    let pg = sqlx::PgPool::connect(&db).await.unwrap();
    let host = peer.host("127.0.0.1");
    let (actor, signer) = peer.actor(&host, "chatty");

    // A short thread: the reply and its four unknown parents are stored, linked.
    let last = chain(&peer, &host, "short", &actor, 5);
    let (status, body) = post_signed(
        &api.base_url,
        &domain,
        "/inbox",
        &signer,
        &create(&actor, &last),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let short = format!("http://{host}/short/");
    eventually(Duration::from_secs(30), "the thread stored", || async {
        (stored(&pg, &short).await == 5).then_some(())
    })
    .await;
    let linked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM statuses s JOIN statuses p ON p.id = s.in_reply_to_id \
         WHERE s.uri LIKE $1",
    )
    .bind(format!("{short}%"))
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(linked, 4, "each reply points at its parent");

    // A chain deeper than the budget: the activity fails once, for good.
    let last = chain(&peer, &host, "deep", &actor, 40);
    let (status, body) = post_signed(
        &api.base_url,
        &domain,
        "/inbox",
        &signer,
        &create(&actor, &last),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let dead = eventually(
        Duration::from_secs(30),
        "the activity's dead job",
        || async {
            let out = server_command(&db, &redis)
                .args(["admin", "jobs", "list"])
                .env("FEDI_DOMAIN", &domain)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            stdout
                .lines()
                .find(|l| l.contains("federation.ingress"))
                .map(str::to_string)
        },
    )
    .await;
    let fields: Vec<&str> = dead.split('\t').collect();
    assert_eq!(fields[3], "0", "not retried: {dead}");
    assert!(
        fields[5].contains(&format!("more than {PER_ACTIVITY} remote fetches")),
        "{dead}"
    );
    let deep = format!("http://{host}/deep/");
    assert_eq!(
        stored(&pg, &deep).await,
        0,
        "nothing of the runaway thread is kept"
    );
    let fetched = peer
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/deep/"))
        .count();
    assert_eq!(fetched, PER_ACTIVITY, "the budget is spent, not more");
}
