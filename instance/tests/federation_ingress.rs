//! The `federation.ingress` job end to end: a test "remote server" on loopback (allowed only
//! through `FEDI_FEDERATION_ALLOW_LOOPBACK`) publishes actors and notes and delivers signed
//! activities to the inbox of a real api; a real worker applies them; effects are read
//! through the Mastodon API and the database. Refusals are checked with a later activity as
//! a barrier: the worker runs one job at a time, in order, so once the barrier's effect is
//! visible the refused activity has been processed.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use common::*;
use fedi_server::federation::keys::{self, Signer};
use fedi_server::federation::signatures;
use serde_json::{Value, json};

const AS: &str = "https://www.w3.org/ns/activitystreams";
const PUBLIC: &str = "https://www.w3.org/ns/activitystreams#Public";
const AP: &str = "application/activity+json";
const WAIT: Duration = Duration::from_secs(30);

/// A peer: serves the documents put on it, takes any POST (our Accepts) with 202.
#[derive(Clone)]
struct Remote {
    base: String,
    docs: Arc<Mutex<HashMap<String, String>>>,
}

impl Remote {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let docs: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let served = docs.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri| {
            let docs = served.clone();
            async move {
                if method == Method::POST {
                    return StatusCode::ACCEPTED.into_response();
                }
                match docs.lock().unwrap().get(uri.path()).cloned() {
                    None => StatusCode::NOT_FOUND.into_response(),
                    Some(body) => ([("content-type", AP)], body).into_response(),
                }
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, docs }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn put(&self, path: &str, doc: &Value) {
        self.docs
            .lock()
            .unwrap()
            .insert(path.into(), doc.to_string());
    }

    /// Publishes actor `/users/<name>`; returns it.
    fn actor(&self, name: &str, extra: Value) -> Actor {
        let pair = keys::generate().unwrap();
        let id = self.url(&format!("/users/{name}"));
        let key_id = format!("{id}#main-key");
        let mut doc = json!({
            "@context": [AS, "https://w3id.org/security/v1"],
            "id": id, "type": "Person", "preferredUsername": name,
            "name": format!("{name} <script>x</script>"),
            "summary": "<p>About me<script>alert(1)</script></p>",
            "inbox": format!("{id}/inbox"), "followers": format!("{id}/followers"),
            "endpoints": {"sharedInbox": self.url("/inbox")},
            "url": self.url(&format!("/@{name}")),
            "icon": {"type": "Image", "url": self.url(&format!("/media/{name}.png"))},
            "publicKey": {"id": key_id, "owner": id, "publicKeyPem": pair.public_pem},
        });
        if let (Value::Object(d), Value::Object(e)) = (&mut doc, extra) {
            d.extend(e);
        }
        self.put(&format!("/users/{name}"), &doc);
        Actor {
            id,
            signer: Signer::new(key_id, &pair.private_pem).unwrap(),
            remote: self.clone(),
        }
    }
}

struct Actor {
    id: String,
    signer: Signer,
    remote: Remote,
}

impl Actor {
    fn new_id(&self, what: &str) -> String {
        format!(
            "{}/{what}/{}",
            self.remote.base,
            fedi_server::auth::credentials::new_secret()
        )
    }

    fn activity(&self, kind: &str, object: Value) -> Value {
        json!({"@context": AS, "id": self.new_id("activities"), "type": kind,
               "actor": self.id, "object": object})
    }

    fn note(&self, content: &str, to: &[&str], tag: Value) -> Value {
        json!({"id": self.new_id("notes"), "type": "Note", "attributedTo": self.id,
               "content": content, "to": to, "cc": [format!("{}/followers", self.id)],
               "published": "2026-11-28T01:00:00Z", "tag": tag})
    }
}

struct Ours {
    api: Server,
    _worker: Server,
    db: sqlx::PgPool,
    domain: String,
    alice: i64,
    token: String,
    http: reqwest::Client,
    /// For handing jobs to the worker directly, past the inbox's own checks.
    state: fedi_server::state::AppState,
}

async fn start() -> Ours {
    let _ = rustls::crypto::ring::default_provider().install_default();
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let domain = format!(
        "ingress-{}-{}.test",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let db = migrated_database().await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let env = [
        ("FEDI_DOMAIN", domain.as_str()),
        ("FEDI_FEDERATION_ALLOW_LOOPBACK", "true"),
    ];
    let api = start_api_with(&db, &redis, &env).await;
    // One job at a time: activities are applied in the order they were delivered.
    let worker = server_command(&db, &redis)
        .arg("worker")
        .env("FEDI_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("FEDI_WORKER_CONCURRENCY", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn fedi-server worker");
    let (alice, user) = create_user(&db, "alice", "pw-alice-123456").await;
    let token = issue_token(&db, Some(user), "read write follow").await;
    let vars = [
        ("FEDI_DOMAIN", domain.clone()),
        ("FEDI_DATABASE_URL", db.clone()),
        ("FEDI_REDIS_URL", redis.clone()),
    ];
    let config = fedi_config::ServerConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let state = fedi_server::state::AppState::new(&config).unwrap();
    Ours {
        state,
        api,
        _worker: Server {
            child: worker,
            base_url: String::new(),
        },
        db: sqlx::PgPool::connect(&db).await.unwrap(),
        domain,
        alice,
        token,
        http: reqwest::Client::new(),
    }
}

impl Ours {
    fn actor_uri(&self, name: &str) -> String {
        format!("https://{}/users/{name}", self.domain)
    }

    /// Delivers `activity` to the shared inbox, signed by `by`; the inbox must take it.
    async fn deliver(&self, by: &Actor, activity: &Value) {
        let reply = self.deliver_raw(by, activity).await;
        assert_eq!(reply.status, 202, "{}", reply.text());
    }

    async fn deliver_raw(&self, by: &Actor, activity: &Value) -> Reply {
        let body = activity.to_string().into_bytes();
        let url = url::Url::parse(&format!("https://{}/inbox", self.domain)).unwrap();
        let signed = signatures::sign(
            &by.signer,
            &Method::POST,
            &url,
            Some(&body),
            AP,
            SystemTime::now(),
        );
        let request = self
            .http
            .post(format!("{}/inbox", self.api.base_url))
            .header("host", &self.domain)
            .header("content-type", AP)
            .header("date", signed.date)
            .header("digest", signed.digest.unwrap())
            .header("signature", signed.signature)
            .body(body);
        Reply::read(request.send().await.unwrap()).await
    }

    async fn api(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Reply {
        let request = self
            .http
            .request(method, format!("{}{path}", self.api.base_url))
            .bearer_auth(&self.token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        Reply::read(request.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> Value {
        self.api(Method::GET, path, &[]).await.expect(200).json()
    }

    async fn account_id(&self, uri: &str) -> Option<i64> {
        sqlx::query_scalar("SELECT id FROM accounts WHERE uri = $1")
            .bind(uri)
            .fetch_optional(&self.db)
            .await
            .unwrap()
    }

    async fn status_id(&self, uri: &str) -> Option<i64> {
        sqlx::query_scalar("SELECT id FROM statuses WHERE uri = $1")
            .bind(uri)
            .fetch_optional(&self.db)
            .await
            .unwrap()
    }

    async fn wait_status(&self, uri: &str) -> i64 {
        eventually(WAIT, uri, || self.status_id(uri)).await
    }

    /// Alice's notifications of `kind`, as the API lists them.
    async fn notifications(&self, kind: &str) -> Vec<Value> {
        let list = self.get("/api/v1/notifications?limit=40").await;
        list.as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] == kind)
            .cloned()
            .collect()
    }

    async fn count(&self, sql: &'static str, id: i64) -> i64 {
        sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Delivers a Note by `by` to public and waits until it is stored: everything delivered
    /// before has been processed.
    async fn barrier(&self, by: &Actor) {
        let note = by.note("<p>barrier</p>", &[PUBLIC], json!([]));
        let uri = note["id"].as_str().unwrap().to_string();
        self.deliver(by, &by.activity("Create", note)).await;
        self.wait_status(&uri).await;
    }
}

#[tokio::test]
async fn a_remote_follow_makes_a_follow_or_a_request_and_notifies() {
    let ours = start().await;
    let remote = Remote::start().await;
    let bob = remote.actor("bob", json!({}));
    let follow = bob.activity("Follow", json!(ours.actor_uri("alice")));
    ours.deliver(&bob, &follow).await;

    let bob_id = eventually(WAIT, "bob stored", || ours.account_id(&bob.id)).await;
    let stored_uri: String = eventually(WAIT, "the follow", || async {
        sqlx::query_scalar(
            "SELECT uri FROM follows WHERE account_id = $1 AND target_account_id = $2",
        )
        .bind(bob_id)
        .bind(ours.alice)
        .fetch_optional(&ours.db)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(stored_uri, follow["id"].as_str().unwrap());
    let follows = eventually(WAIT, "a follow notification", || async {
        Some(ours.notifications("follow").await).filter(|n| !n.is_empty())
    })
    .await;
    // The remote account renders as Mastodon renders remote accounts.
    let account = &follows[0]["account"];
    let host = remote.base.trim_start_matches("http://");
    assert_eq!(account["acct"], format!("bob@{host}"));
    assert_eq!(account["uri"], bob.id);
    assert_eq!(account["url"], remote.url("/@bob"));
    assert_eq!(account["avatar"], remote.url("/media/bob.png"));
    let note = account["note"].as_str().unwrap();
    assert!(
        note.contains("About me") && !note.contains("script"),
        "{note}"
    );
    assert!(!account["display_name"].as_str().unwrap().contains('<'));

    // A locked account gets a request instead.
    sqlx::query("UPDATE accounts SET locked = true WHERE id = $1")
        .bind(ours.alice)
        .execute(&ours.db)
        .await
        .unwrap();
    let carol = remote.actor("carol", json!({}));
    ours.deliver(
        &carol,
        &carol.activity("Follow", json!(ours.actor_uri("alice"))),
    )
    .await;
    eventually(WAIT, "a follow request notification", || async {
        Some(ours.notifications("follow_request").await).filter(|n| !n.is_empty())
    })
    .await;
    let carol_id = ours.account_id(&carol.id).await.unwrap();
    assert_eq!(
        ours.count(
            "SELECT count(*) FROM follow_requests WHERE account_id = $1",
            carol_id
        )
        .await,
        1
    );
    assert_eq!(
        ours.count(
            "SELECT count(*) FROM follows WHERE account_id = $1",
            carol_id
        )
        .await,
        0
    );

    // A report about alice is kept for moderators (once, however often it arrives).
    let mut flag = bob.activity("Flag", json!([ours.actor_uri("alice")]));
    flag["content"] = json!("spam <b>here</b>");
    ours.deliver(&bob, &flag).await;
    ours.deliver(&bob, &flag).await;
    let comment: String = eventually(WAIT, "the report", || async {
        sqlx::query_scalar(
            "SELECT comment FROM reports WHERE account_id = $1 AND target_account_id = $2",
        )
        .bind(bob_id)
        .bind(ours.alice)
        .fetch_optional(&ours.db)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(comment, "spam here");

    // Undo of the Follow ends it.
    ours.deliver(&bob, &bob.activity("Undo", follow.clone()))
        .await;
    eventually(WAIT, "the follow undone", || async {
        (ours
            .count("SELECT count(*) FROM follows WHERE account_id = $1", bob_id)
            .await
            == 0)
            .then_some(())
    })
    .await;

    // Carol blocks alice: the block is recorded, her follow request goes.
    ours.deliver(
        &carol,
        &carol.activity("Block", json!(ours.actor_uri("alice"))),
    )
    .await;
    eventually(WAIT, "the block", || async {
        let blocks = ours
            .count(
                "SELECT count(*) FROM blocks WHERE account_id = $1",
                carol_id,
            )
            .await;
        let requests = ours
            .count(
                "SELECT count(*) FROM follow_requests WHERE account_id = $1",
                carol_id,
            )
            .await;
        (blocks == 1 && requests == 0).then_some(())
    })
    .await;
    assert_eq!(
        ours.count("SELECT count(*) FROM reports WHERE account_id = $1", bob_id)
            .await,
        1
    );
}

#[tokio::test]
async fn remote_statuses_reach_followers_and_their_lifecycle_applies() {
    let ours = start().await;
    let remote = Remote::start().await;
    let bob = remote.actor("bob", json!({}));
    // Bob must be known for alice to follow him (the follow is made here, not federated).
    ours.deliver(
        &bob,
        &bob.activity("Follow", json!(ours.actor_uri("alice"))),
    )
    .await;
    let bob_id = eventually(WAIT, "bob stored", || ours.account_id(&bob.id)).await;
    // Alice asked to follow bob (the request the API records); bob accepts.
    sqlx::query("INSERT INTO follow_requests (account_id, target_account_id) VALUES ($1, $2)")
        .bind(ours.alice)
        .bind(bob_id)
        .execute(&ours.db)
        .await
        .unwrap();
    let our_follow = json!({"id": format!("{}#follows/{bob_id}", ours.actor_uri("alice")),
                            "type": "Follow", "actor": ours.actor_uri("alice"), "object": bob.id});
    ours.deliver(&bob, &bob.activity("Accept", our_follow))
        .await;
    eventually(WAIT, "alice following bob", || async {
        (ours
            .count(
                "SELECT count(*) FROM follows WHERE target_account_id = $1",
                bob_id,
            )
            .await
            == 1)
            .then_some(())
    })
    .await;

    let alice_uri = ours.actor_uri("alice");
    let mut note = bob.note(
        "<p>Hello <a href=\"x\">@alice</a> #Fedi<script>alert(1)</script></p>",
        &[PUBLIC],
        json!([{"type": "Mention", "href": alice_uri, "name": "@alice"},
               {"type": "Hashtag", "name": "#Fedi"}]),
    );
    note["attachment"] = json!([{"type": "Document", "mediaType": "image/png",
        "url": remote.url("/media/cat.png"), "name": "a cat"}]);
    let note_uri = note["id"].as_str().unwrap().to_string();
    let create = bob.activity("Create", note.clone());
    ours.deliver(&bob, &create).await;
    let status = ours.wait_status(&note_uri).await;
    let status_id = status.to_string();

    // Home timeline through the API, the mention notified.
    let home = eventually(WAIT, "the status in alice's home", || async {
        let home = ours.get("/api/v1/timelines/home").await;
        home.as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"].as_str() == Some(status_id.as_str()))
            .cloned()
    })
    .await;
    let content = home["content"].as_str().unwrap();
    assert!(
        content.contains("Hello") && !content.contains("script"),
        "{content}"
    );
    assert_eq!(home["account"]["uri"], bob.id);
    assert_eq!(home["uri"], note_uri);
    assert_eq!(home["visibility"], "public");
    assert_eq!(
        home["media_attachments"][0]["remote_url"],
        remote.url("/media/cat.png")
    );
    assert_eq!(
        home["tags"][0]["name"].as_str().unwrap().to_lowercase(),
        "fedi"
    );
    let mentions = eventually(WAIT, "a mention notification", || async {
        Some(ours.notifications("mention").await).filter(|n| !n.is_empty())
    })
    .await;
    assert_eq!(mentions[0]["status"]["id"], status.to_string());

    // Redelivery of the same Create: nothing new.
    ours.deliver(&bob, &create).await;

    // Edit: new content, history of two versions.
    note["content"] = json!("<p>Edited</p>");
    ours.deliver(&bob, &bob.activity("Update", note.clone()))
        .await;
    eventually(WAIT, "the edit", || async {
        let s = ours.get(&format!("/api/v1/statuses/{status}")).await;
        s["content"]
            .as_str()
            .unwrap()
            .contains("Edited")
            .then_some(s)
    })
    .await;
    let history = ours
        .get(&format!("/api/v1/statuses/{status}/history"))
        .await;
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    assert_eq!(
        ours.count(
            "SELECT count(*) FROM statuses WHERE account_id = $1 AND uri = (SELECT uri FROM statuses WHERE id = $1)",
            bob_id
        )
        .await,
        0
    );
    assert_eq!(
        ours.count(
            "SELECT count(*) FROM notifications WHERE type = 'mention' AND status_id = $1",
            status
        )
        .await,
        1
    );

    // Like and Announce of alice's status notify her; Undo removes them.
    let own = ours
        .api(Method::POST, "/api/v1/statuses", &[("status", "mine")])
        .await
        .expect(200)
        .json();
    let own_id: i64 = own["id"].as_str().unwrap().parse().unwrap();
    let own_uri = own["uri"].as_str().unwrap().to_string();
    let like = bob.activity("Like", json!(own_uri));
    ours.deliver(&bob, &like).await;
    ours.deliver(&bob, &like).await;
    let announce = {
        let mut a = bob.activity("Announce", json!(own_uri));
        a["to"] = json!([PUBLIC]);
        a
    };
    ours.deliver(&bob, &announce).await;
    eventually(WAIT, "favourite and reblog notifications", || async {
        let fav = ours.notifications("favourite").await;
        let reblog = ours.notifications("reblog").await;
        (fav.len() == 1 && reblog.len() == 1).then_some(())
    })
    .await;
    assert_eq!(
        ours.count(
            "SELECT count(*) FROM favourites WHERE status_id = $1",
            own_id
        )
        .await,
        1
    );
    ours.deliver(&bob, &bob.activity("Undo", like)).await;
    ours.deliver(&bob, &bob.activity("Undo", announce)).await;
    eventually(WAIT, "like and boost undone", || async {
        let favs = ours
            .count(
                "SELECT count(*) FROM favourites WHERE status_id = $1",
                own_id,
            )
            .await;
        let reblogs = ours
            .count(
                "SELECT count(*) FROM statuses WHERE reblog_of_id = $1",
                own_id,
            )
            .await;
        (favs == 0 && reblogs == 0).then_some(())
    })
    .await;

    // Delete: gone from the API; a redelivered Create does not bring it back.
    let tombstone = json!({"id": note_uri, "type": "Tombstone"});
    ours.deliver(&bob, &bob.activity("Delete", tombstone)).await;
    eventually(WAIT, "the status deleted", || async {
        let reply = ours
            .api(Method::GET, &format!("/api/v1/statuses/{status}"), &[])
            .await;
        (reply.status == 404).then_some(())
    })
    .await;
    ours.deliver(&bob, &create).await;
    ours.barrier(&bob).await;
    assert_eq!(ours.status_id(&note_uri).await, None);

    // A profile Update is read from the actor's server.
    remote.actor("bob", json!({"name": "Robert"}));
    let update = bob.activity("Update", json!({"id": bob.id, "type": "Person"}));
    // The key changed with the republished actor; bob's old key is the one cached, so sign
    // with it: the inbox verifies against the cache.
    ours.deliver(&bob, &update).await;
    eventually(WAIT, "the new display name", || async {
        let a = ours.get(&format!("/api/v1/accounts/{bob_id}")).await;
        (a["display_name"] == "Robert").then_some(())
    })
    .await;
}

#[tokio::test]
async fn forged_objects_are_refused_and_third_party_objects_refetched() {
    let ours = start().await;
    let remote = Remote::start().await;
    let other = Remote::start().await;
    let bob = remote.actor("bob", json!({}));
    let carol = other.actor("carol", json!({}));

    // A Note claiming an id on another server.
    let mut foreign = bob.note("<p>not mine</p>", &[PUBLIC], json!([]));
    let foreign_uri = carol.new_id("notes");
    foreign["id"] = json!(foreign_uri);
    ours.deliver(&bob, &bob.activity("Create", foreign)).await;

    // Signed by bob, claiming to be carol: the inbox refuses it before any job.
    let mut impostor = carol.note("<p>impostor</p>", &[PUBLIC], json!([]));
    impostor["attributedTo"] = json!(carol.id);
    let impostor_uri = impostor["id"].as_str().unwrap().to_string();
    let reply = ours
        .deliver_raw(&bob, &carol.activity("Create", impostor))
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    // The same handed to the worker directly: the job checks the signer again.
    let mut impostor2 = carol.note("<p>impostor</p>", &[PUBLIC], json!([]));
    impostor2["attributedTo"] = json!(carol.id);
    let impostor2_uri = impostor2["id"].as_str().unwrap().to_string();
    fedi_server::federation::ingress::hand_off(
        &ours.state,
        carol.activity("Create", impostor2),
        &bob.id,
        None,
    )
    .await
    .unwrap();

    // Bob boosts carol's note, embedding a forged copy: the genuine one is fetched.
    let genuine = carol.note("<p>genuine words</p>", &[PUBLIC], json!([]));
    let genuine_uri = genuine["id"].as_str().unwrap().to_string();
    other.put(genuine_uri.trim_start_matches(&other.base), &genuine);
    let mut forged = genuine.clone();
    forged["content"] = json!("<p>FORGED words</p>");
    let mut announce = bob.activity("Announce", forged);
    announce["to"] = json!([PUBLIC]);
    ours.deliver(&bob, &announce).await;
    let boosted = ours.wait_status(&genuine_uri).await;
    let content: String = sqlx::query_scalar("SELECT content_html FROM statuses WHERE id = $1")
        .bind(boosted)
        .fetch_one(&ours.db)
        .await
        .unwrap();
    assert!(
        content.contains("genuine") && !content.contains("FORGED"),
        "{content}"
    );
    let carol_id = ours.account_id(&carol.id).await.expect("carol fetched");
    let author: i64 = sqlx::query_scalar("SELECT account_id FROM statuses WHERE id = $1")
        .bind(boosted)
        .fetch_one(&ours.db)
        .await
        .unwrap();
    assert_eq!(author, carol_id);

    // Deleting carol's note in bob's name changes nothing.
    let delete = bob.activity("Delete", json!({"id": genuine_uri, "type": "Tombstone"}));
    ours.deliver(&bob, &delete).await;

    // Nor does editing it.
    let mut hacked = genuine.clone();
    hacked["content"] = json!("<p>HACKED</p>");
    ours.deliver(&bob, &bob.activity("Update", hacked)).await;

    ours.barrier(&bob).await;
    let content: String = sqlx::query_scalar("SELECT content_html FROM statuses WHERE id = $1")
        .bind(boosted)
        .fetch_one(&ours.db)
        .await
        .unwrap();
    assert!(content.contains("genuine"), "{content}");
    assert_eq!(ours.status_id(&foreign_uri).await, None);
    assert_eq!(ours.status_id(&impostor_uri).await, None);
    assert_eq!(ours.status_id(&impostor2_uri).await, None);
    assert_eq!(ours.status_id(&genuine_uri).await, Some(boosted));
    assert_eq!(
        ours.count(
            "SELECT count(*) FROM statuses WHERE reblog_of_id = $1",
            boosted
        )
        .await,
        1
    );

    // Bob deletes himself: his account and boost go, carol's note stays.
    ours.deliver(&bob, &bob.activity("Delete", json!(bob.id)))
        .await;
    eventually(WAIT, "bob gone", || async {
        ours.account_id(&bob.id).await.is_none().then_some(())
    })
    .await;
    assert_eq!(
        ours.count(
            "SELECT count(*) FROM statuses WHERE reblog_of_id = $1",
            boosted
        )
        .await,
        0
    );
    assert_eq!(ours.status_id(&genuine_uri).await, Some(boosted));
}
