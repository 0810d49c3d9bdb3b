//! The instance's domain blocks and limited federation (`FEDI_FEDERATION_*`), against a
//! real api and worker: a suspended or unlisted server's deliveries get 403 before any key
//! is fetched, nothing is delivered to it nor fetched from it, the stored accounts of
//! suspended and silenced domains are suspended / kept out of the public timeline. Domains
//! are matched whatever their spelling: subdomains, case, trailing dot, IDN.

mod common;
mod peer;

use std::time::Duration;

use common::*;
use fedi_server::federation::domain_policy::{self, DomainPolicy};
use fedi_server::federation::keys::Signer;
use fedi_server::state::AppState;
use peer::*;
use serde_json::json;

struct Ours {
    api: Server,
    _worker: Option<Server>,
    db: String,
    domain: String,
}

async fn start(policy: &[(&str, &str)], worker: bool) -> Ours {
    install_crypto_provider();
    let db = migrated_database().await;
    let domain = unique_domain();
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let mut env = vec![
        ("FEDI_DOMAIN", domain.as_str()),
        ("FEDI_FEDERATION_ALLOW_LOOPBACK", "true"),
        ("FEDI_WORKER_CONCURRENCY", "4"),
    ];
    env.extend_from_slice(policy);
    let api = start_api_with(&db, &redis, &env).await;
    let worker = worker.then(|| start_worker(&db, &redis, &env));
    create_user(&db, "alice", "pw-alice-123456").await;
    Ours {
        api,
        _worker: worker,
        db,
        domain,
    }
}

impl Ours {
    fn alice(&self) -> String {
        format!("https://{}/users/alice", self.domain)
    }

    async fn deliver(&self, signer: &Signer, activity: &serde_json::Value) -> (u16, String) {
        post_signed(&self.api.base_url, &self.domain, "/inbox", signer, activity).await
    }

    async fn pg(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.db).await.unwrap()
    }
}

#[tokio::test]
async fn suspended_domains_are_refused_at_the_inbox_whatever_their_spelling() {
    let peer = Peer::start().await;
    let ours = start(
        &[(
            "FEDI_FEDERATION_DOMAIN_BLOCKS",
            "Blocked.Example.,bücher.example,LocalHost.,loud.example=silence",
        )],
        false,
    )
    .await;
    for actor in [
        "https://blocked.example/users/a",
        "https://social.BLOCKED.example./users/a",
        "https://deep.sub.blocked.example/users/a",
        "https://xn--bcher-kva.example/users/a",
    ] {
        let (status, body) = ours
            .deliver(&signer_for(actor), &follow(actor, &ours.alice()))
            .await;
        assert_eq!(status, 403, "{actor}: {body}");
        assert!(body.contains("is blocked by this server"), "{body}");
    }
    // Key ids travel in a header, in punycode; an actor named in Unicode is refused too.
    for actor in [
        "https://BÜCHER.example/users/a",
        "https://m.bücher.example./users/a",
    ] {
        let signer = signer_for("https://fine.example/users/k");
        let (status, body) = ours.deliver(&signer, &follow(actor, &ours.alice())).await;
        assert_eq!(status, 403, "{actor}: {body}");
    }
    // The same peer under a blocked name is refused without being asked for its key...
    let blocked_host = peer.host("localhost");
    let (blocked, signer) = peer.actor(&blocked_host, "bob");
    let (status, _) = ours
        .deliver(&signer, &follow(&blocked, &ours.alice()))
        .await;
    assert_eq!(status, 403);
    assert!(
        peer.requests_to(&blocked_host).is_empty(),
        "no key fetch from a blocked domain"
    );
    // ...and accepted under another one, as is a silenced server.
    let open_host = peer.host("127.0.0.1");
    let (open, signer) = peer.actor(&open_host, "carol");
    let (status, body) = ours.deliver(&signer, &follow(&open, &ours.alice())).await;
    assert_eq!(status, 202, "{body}");
    // A lookalike is not a subdomain: its key is looked for (and not found: 401, not 403).
    let lookalike = "https://notblocked.example/users/a";
    let (status, _) = ours
        .deliver(&signer_for(lookalike), &follow(lookalike, &ours.alice()))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn limited_federation_talks_to_the_allowed_domains_only() {
    let peer = Peer::start().await;
    let ours = start(
        &[
            ("FEDI_FEDERATION_MODE", "limited"),
            (
                "FEDI_FEDERATION_ALLOWED_DOMAINS",
                "127.0.0.1,Friends.Example.",
            ),
        ],
        false,
    )
    .await;
    let (allowed, signer) = peer.actor(&peer.host("127.0.0.1"), "carol");
    let (status, body) = ours
        .deliver(&signer, &follow(&allowed, &ours.alice()))
        .await;
    assert_eq!(status, 202, "{body}");
    let other_host = peer.host("localhost");
    let (other, signer) = peer.actor(&other_host, "dave");
    let (status, _) = ours.deliver(&signer, &follow(&other, &ours.alice())).await;
    assert_eq!(status, 403);
    assert!(peer.requests_to(&other_host).is_empty());
    let stranger = "https://stranger.example/users/a";
    let (status, _) = ours
        .deliver(&signer_for(stranger), &follow(stranger, &ours.alice()))
        .await;
    assert_eq!(status, 403);
}

/// Inserts a remote account (as fetched earlier) following alice; returns its id.
async fn remote_follower(pg: &sqlx::PgPool, alice: i64, host: &str, name: &str) -> i64 {
    let uri = format!("http://{host}/users/{name}");
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO accounts (username, domain, uri, inbox_url, fetched_at) \
         VALUES ($1, $2, $3, $4, now()) RETURNING id",
    )
    .bind(name)
    .bind(host)
    .bind(&uri)
    .bind(format!("{uri}/inbox"))
    .fetch_one(pg)
    .await
    .unwrap();
    sqlx::query("INSERT INTO follows (account_id, target_account_id) VALUES ($1, $2)")
        .bind(id)
        .bind(alice)
        .execute(pg)
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn nothing_is_delivered_to_nor_fetched_from_a_suspended_domain() {
    let peer = Peer::start().await;
    let ours = start(&[("FEDI_FEDERATION_DOMAIN_BLOCKS", "LOCALHOST")], true).await;
    let pg = ours.pg().await;
    let alice: i64 = sqlx::query_scalar("SELECT id FROM accounts WHERE username = 'alice'")
        .fetch_one(&pg)
        .await
        .unwrap();
    let (open_host, blocked_host) = (peer.host("127.0.0.1"), peer.host("localhost"));
    remote_follower(&pg, alice, &open_host, "carol").await;
    remote_follower(&pg, alice, &blocked_host, "bob").await;
    let token = issue_token(&ours.db, Some(alice_user(&pg).await), "read write").await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/v1/statuses", ours.api.base_url))
        .bearer_auth(&token)
        .json(&json!({"status": "hello", "visibility": "public"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually(
        Duration::from_secs(20),
        "the Create at the open peer",
        || async {
            peer.requests_to(&open_host)
                .iter()
                .any(|r| r.path == "/users/carol/inbox")
                .then_some(())
        },
    )
    .await;
    // Both deliveries were queued together; give the blocked one the same time again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        peer.requests_to(&blocked_host).is_empty(),
        "delivered to a suspended domain: {:?}",
        peer.requests_to(&blocked_host)
    );
    // Resolving an account there fetches nothing either.
    peer.actor(&blocked_host, "erin");
    let r = client
        .get(format!(
            "{}/api/v2/search?resolve=true&type=accounts&q=@erin@{blocked_host}",
            ours.api.base_url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let found: serde_json::Value = r.json().await.unwrap();
    assert_eq!(found["accounts"], json!([]));
    assert!(peer.requests_to(&blocked_host).is_empty());
}

async fn alice_user(pg: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT u.id FROM users u JOIN accounts a ON a.id = u.account_id WHERE a.username = 'alice'",
    )
    .fetch_one(pg)
    .await
    .unwrap()
}

#[tokio::test]
async fn stored_accounts_of_suspended_and_silenced_domains_are_hidden_and_restored() {
    let ours = start(&[], false).await;
    let pg = ours.pg().await;
    let mut statuses = Vec::new();
    for (name, domain) in [
        ("spam", "spam.example"),
        ("sub", "m.spam.example"),
        ("loud", "loud.example"),
        ("fine", "fine.example"),
    ] {
        let uri = format!("https://{domain}/users/{name}");
        let account: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (username, domain, uri, inbox_url) VALUES ($1, $2, $3, $4) \
             RETURNING id",
        )
        .bind(name)
        .bind(domain)
        .bind(&uri)
        .bind(format!("{uri}/inbox"))
        .fetch_one(&pg)
        .await
        .unwrap();
        let status: i64 = sqlx::query_scalar(
            "INSERT INTO statuses (account_id, uri, content_html, visibility, local) \
             VALUES ($1, $2, '<p>hi</p>', 'public', false) RETURNING id",
        )
        .bind(account)
        .bind(format!("{uri}/statuses/1"))
        .fetch_one(&pg)
        .await
        .unwrap();
        statuses.push((name, status));
    }
    // A moderator's own suspension of an account is not the policy's to lift.
    sqlx::query("UPDATE accounts SET suspended_at = now() WHERE username = 'fine'")
        .execute(&pg)
        .await
        .unwrap();
    let config = config_from(&[
        ("FEDI_DOMAIN", &ours.domain),
        ("FEDI_DATABASE_URL", &ours.db),
        ("FEDI_REDIS_URL", &service_env("FEDI_TEST_REDIS_URL")),
        (
            "FEDI_FEDERATION_DOMAIN_BLOCKS",
            "SPAM.example.,loud.example=silence",
        ),
    ]);
    let state = AppState::new(&config).unwrap();
    let policy = DomainPolicy::new(&config.federation);
    assert_eq!(domain_policy::apply(&state, &policy).await.unwrap(), 3);
    assert_eq!(
        domain_policy::apply(&state, &policy).await.unwrap(),
        0,
        "idempotent"
    );

    let public = || async {
        let r: serde_json::Value =
            reqwest::get(format!("{}/api/v1/timelines/public", ours.api.base_url))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        let mut names: Vec<String> = r
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["account"]["username"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(public().await, Vec::<String>::new());
    let single = |id: i64| {
        let base = ours.api.base_url.clone();
        async move {
            reqwest::get(format!("{base}/api/v1/statuses/{id}"))
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let status_of = |name: &str| statuses.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(
        single(status_of("spam")).await,
        404,
        "a suspended domain's content is hidden"
    );
    assert_eq!(single(status_of("sub")).await, 404, "subdomains too");
    assert_eq!(single(status_of("loud")).await, 200, "silenced, not hidden");

    // The blocks lifted: what the policy did is undone, the moderator's suspension stays.
    let open = DomainPolicy::new(
        &config_from(&[
            ("FEDI_DOMAIN", &ours.domain),
            ("FEDI_DATABASE_URL", &ours.db),
            ("FEDI_REDIS_URL", "redis://unused"),
        ])
        .federation,
    );
    assert_eq!(domain_policy::apply(&state, &open).await.unwrap(), 3);
    assert_eq!(public().await, vec!["loud", "spam", "sub"]);
}

async fn notifications_from(pg: &sqlx::PgPool, actor_uri: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM notifications n JOIN accounts a ON a.id = n.from_account_id \
         WHERE a.uri = $1",
    )
    .bind(actor_uri)
    .fetch_one(pg)
    .await
    .unwrap()
}

async fn favourites_from(pg: &sqlx::PgPool, actor_uri: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM favourites f JOIN accounts a ON a.id = f.account_id \
         WHERE a.uri = $1",
    )
    .bind(actor_uri)
    .fetch_one(pg)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silenced_server_notifies_only_those_who_follow_its_accounts() {
    let peer = Peer::start().await;
    let ours = start(
        &[("FEDI_FEDERATION_DOMAIN_BLOCKS", "127.0.0.1=silence")],
        true,
    )
    .await;
    let pg = ours.pg().await;
    let token = issue_token(&ours.db, Some(alice_user(&pg).await), "read write").await;
    let mut statuses = Vec::new();
    for text in ["one", "two"] {
        let r: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/api/v1/statuses", ours.api.base_url))
            .bearer_auth(&token)
            .json(&json!({"status": text, "visibility": "public"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        statuses.push(format!(
            "https://{}/users/alice/statuses/{}",
            ours.domain,
            r["id"].as_str().unwrap()
        ));
    }
    let like = |actor: &str, status: &str, n: u32| {
        json!({"@context": AS, "id": format!("{actor}#likes/{n}"), "type": "Like",
               "actor": actor, "object": status})
    };
    let (quiet, quiet_key) = peer.actor(&peer.host("127.0.0.1"), "quiet");
    let (loud, loud_key) = peer.actor(&peer.host("localhost"), "loud");
    for (actor, key) in [(&quiet, &quiet_key), (&loud, &loud_key)] {
        let (status, body) = ours.deliver(key, &like(actor, &statuses[0], 1)).await;
        assert_eq!(status, 202, "{body}");
    }
    eventually(
        Duration::from_secs(30),
        "both favourites stored",
        || async {
            (favourites_from(&pg, &quiet).await == 1 && notifications_from(&pg, &loud).await == 1)
                .then_some(())
        },
    )
    .await;
    let silenced: bool =
        sqlx::query_scalar("SELECT silenced_at IS NOT NULL FROM accounts WHERE uri = $1")
            .bind(&quiet)
            .fetch_one(&pg)
            .await
            .unwrap();
    assert!(silenced, "stored silenced as its domain is");
    assert_eq!(
        notifications_from(&pg, &quiet).await,
        0,
        "a stranger on a silenced server"
    );

    // Once alice follows it, its favourites notify her.
    sqlx::query(
        "INSERT INTO follows (account_id, target_account_id) \
         SELECT (SELECT id FROM accounts WHERE username = 'alice' AND domain IS NULL), id \
         FROM accounts WHERE uri = $1",
    )
    .bind(&quiet)
    .execute(&pg)
    .await
    .unwrap();
    let (status, body) = ours
        .deliver(&quiet_key, &like(&quiet, &statuses[1], 2))
        .await;
    assert_eq!(status, 202, "{body}");
    eventually(
        Duration::from_secs(30),
        "the followed account's notification",
        || async { (notifications_from(&pg, &quiet).await == 1).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_media_is_kept_as_a_bare_link() {
    let peer = Peer::start().await;
    let ours = start(
        &[("FEDI_FEDERATION_DOMAIN_BLOCKS", "LocalHost=reject_media")],
        true,
    )
    .await;
    let pg = ours.pg().await;
    let mut actors = Vec::new();
    for name in ["localhost", "127.0.0.1"] {
        let host = peer.host(name);
        let (actor, key) = peer.actor(&host, "painter");
        // The actor with an avatar, as it is fetched.
        let mut doc = peer.get(&actor).expect("published");
        doc["icon"] = json!({"type": "Image", "url": format!("http://{host}/avatar.png")});
        peer.put(&actor, doc);
        let note = format!("http://{host}/notes/1");
        let create = json!({
            "@context": AS, "id": format!("{note}/activity"), "type": "Create", "actor": actor,
            "object": {"id": note, "type": "Note", "attributedTo": actor, "content": "<p>art</p>",
                       "to": [format!("{AS}#Public")],
                       "attachment": [{"type": "Document", "mediaType": "image/png",
                                       "url": format!("http://{host}/art.png"),
                                       "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj"}]},
        });
        let (status, body) = ours.deliver(&key, &create).await;
        assert_eq!(status, 202, "{body}");
        actors.push((name, actor, note));
    }
    for (name, actor, note) in actors {
        let (kind, url, blurhash): (String, String, Option<String>) =
            eventually(Duration::from_secs(30), "the status stored", || async {
                sqlx::query_as(
                    "SELECT m.type, m.remote_url, m.blurhash FROM media_attachments m \
                     JOIN statuses s ON s.id = m.status_id WHERE s.uri = $1",
                )
                .bind(&note)
                .fetch_optional(&pg)
                .await
                .unwrap()
            })
            .await;
        let avatar: Option<String> =
            sqlx::query_scalar("SELECT avatar_remote_url FROM accounts WHERE uri = $1")
                .bind(&actor)
                .fetch_one(&pg)
                .await
                .unwrap();
        assert!(url.ends_with("/art.png"), "{url}");
        if name == "localhost" {
            assert_eq!((kind.as_str(), blurhash, avatar), ("unknown", None, None));
        } else {
            assert_eq!(kind, "image");
            assert!(blurhash.is_some() && avatar.is_some());
        }
    }
}
