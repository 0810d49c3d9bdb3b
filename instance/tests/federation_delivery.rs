//! Outgoing federation over HTTP: a test "remote server" on a loopback port (allowed only
//! through `FEDI_FEDERATION_ALLOW_LOOPBACK`) serves WebFinger and actors and records what
//! reaches its inboxes; a real `fedi-server worker` delivers. Signatures are checked with
//! our own verifier against the local account's published key.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use common::*;
use fedi_server::federation::keys::{self, PublicKey};
use fedi_server::federation::signatures;
use serde_json::{Value, json};

const AS: &str = "https://www.w3.org/ns/activitystreams";
const PUBLIC: &str = "https://www.w3.org/ns/activitystreams#Public";

/// One POST a remote inbox received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn activity(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
struct Shared {
    actors: HashMap<String, Value>,
    /// Status answered on an inbox path (202 when absent).
    answers: HashMap<String, u16>,
    received: Vec<Received>,
    /// Private keys of the actors, by name.
    keys: HashMap<String, String>,
}

#[derive(Clone)]
struct Remote {
    base: String,
    /// `127.0.0.1:port`: the domain its accounts get.
    host: String,
    shared: Arc<Mutex<Shared>>,
}

#[derive(serde::Deserialize)]
struct Resource {
    resource: String,
}

impl Remote {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let base = format!("http://{host}");
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let (get_state, post_state) = (shared.clone(), shared.clone());
        let webfinger_base = base.clone();
        let webfinger_state = shared.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/webfinger",
                axum::routing::get(move |Query(q): Query<Resource>| {
                    let state = webfinger_state.clone();
                    let base = webfinger_base.clone();
                    async move {
                        let user = q
                            .resource
                            .strip_prefix("acct:")
                            .and_then(|r| r.split_once('@'))
                            .map(|(u, _)| u.to_string())
                            .unwrap_or_default();
                        let path = format!("/users/{user}");
                        if !state.lock().unwrap().actors.contains_key(&path) {
                            return StatusCode::NOT_FOUND.into_response();
                        }
                        let jrd = json!({
                            "subject": q.resource,
                            "links": [{"rel": "self", "type": "application/activity+json",
                                       "href": format!("{base}{path}")}],
                        });
                        ([("content-type", "application/jrd+json")], jrd.to_string())
                            .into_response()
                    }
                }),
            )
            .fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let (get_state, post_state) = (get_state.clone(), post_state.clone());
                    async move {
                        let path = uri.path().to_string();
                        if method == Method::POST {
                            let mut s = post_state.lock().unwrap();
                            let status = s.answers.get(&path).copied().unwrap_or(202);
                            s.received.push(Received {
                                path,
                                headers,
                                body,
                            });
                            return StatusCode::from_u16(status).unwrap().into_response();
                        }
                        match get_state.lock().unwrap().actors.get(&path) {
                            Some(doc) => (
                                [("content-type", "application/activity+json")],
                                doc.to_string(),
                            )
                                .into_response(),
                            None => StatusCode::NOT_FOUND.into_response(),
                        }
                    }
                },
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, host, shared }
    }

    /// Publishes actor `name`, with the server's shared inbox or without one; returns its id.
    fn actor(&self, name: &str, shared_inbox: bool) -> String {
        let id = format!("{}/users/{name}", self.base);
        let pair = keys::generate().unwrap();
        let mut doc = json!({
            "@context": [AS, "https://w3id.org/security/v1"],
            "id": id,
            "type": "Person",
            "preferredUsername": name,
            "inbox": format!("{id}/inbox"),
            "followers": format!("{id}/followers"),
            "publicKey": {"id": format!("{id}#main-key"), "owner": id,
                          "publicKeyPem": pair.public_pem},
        });
        if shared_inbox {
            doc["endpoints"] = json!({"sharedInbox": format!("{}/inbox", self.base)});
        }
        let mut shared = self.shared.lock().unwrap();
        shared.actors.insert(format!("/users/{name}"), doc);
        shared.keys.insert(name.into(), pair.private_pem);
        id
    }

    fn signer(&self, name: &str) -> keys::Signer {
        let pem = self.shared.lock().unwrap().keys[name].clone();
        keys::Signer::new(format!("{}/users/{name}#main-key", self.base), &pem).unwrap()
    }

    fn answer(&self, path: &str, status: u16) {
        self.shared
            .lock()
            .unwrap()
            .answers
            .insert(path.into(), status);
    }

    fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// The POSTs received whose activity has `type`.
    fn received_of(&self, kind: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.activity()["type"] == kind)
            .collect()
    }

    async fn wait_for(&self, kind: &str, count: usize, timeout: Duration) -> Vec<Received> {
        eventually(
            timeout,
            &format!("{count} {kind} at {}", self.base),
            || async {
                let got = self.received_of(kind);
                (got.len() >= count).then_some(got)
            },
        )
        .await
    }
}

/// Our instance: api and worker on a domain of their own (job queues are per domain).
struct Ours {
    api: Server,
    _worker: Server,
    db: String,
    domain: String,
    alice: i64,
    token: String,
}

async fn start() -> Ours {
    install_crypto_provider();
    let db = migrated_database().await;
    let domain = unique_domain();
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let env = [
        ("FEDI_DOMAIN", domain.as_str()),
        ("FEDI_FEDERATION_ALLOW_LOOPBACK", "true"),
        ("FEDI_WORKER_CONCURRENCY", "4"),
    ];
    let api = start_api_with(&db, &redis, &env).await;
    let worker = start_worker(&db, &redis, &env);
    let (alice, user) = create_user(&db, "alice", "pw-alice-123456").await;
    let token = issue_token(&db, Some(user), "read write follow").await;
    Ours {
        api,
        _worker: worker,
        db,
        domain,
        alice,
        token,
    }
}

impl Ours {
    async fn pg(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.db).await.unwrap()
    }

    async fn get(&self, path: &str) -> Reply {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.api.base_url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        Reply::read(r).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.api.base_url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        Reply::read(r).await
    }

    /// Resolves `name@remote` through search and returns its account id.
    async fn resolve(&self, remote: &Remote, name: &str) -> i64 {
        let q = format!("@{name}@{}", remote.host);
        let reply = self
            .get(&format!(
                "/api/v2/search?resolve=true&type=accounts&q={}",
                urlencode(&q)
            ))
            .await
            .expect(200);
        let accounts = reply.json()["accounts"].as_array().unwrap().clone();
        assert_eq!(accounts.len(), 1, "{q}: {accounts:?}");
        assert_eq!(accounts[0]["acct"], format!("{name}@{}", remote.host));
        accounts[0]["id"].as_str().unwrap().parse().unwrap()
    }

    /// `follower` (remote) follows alice: the state an accepted remote Follow leaves.
    async fn followed_by(&self, follower: i64) {
        sqlx::query("INSERT INTO follows (account_id, target_account_id) VALUES ($1, $2)")
            .bind(follower)
            .bind(self.alice)
            .execute(&self.pg().await)
            .await
            .unwrap();
    }

    async fn alice_key(&self) -> PublicKey {
        let pem: String =
            sqlx::query_scalar("SELECT public_key_pem FROM account_keys WHERE account_id = $1")
                .bind(self.alice)
                .fetch_one(&self.pg().await)
                .await
                .unwrap();
        PublicKey::from_pem(&pem).unwrap()
    }

    fn alice_uri(&self) -> String {
        format!("https://{}/users/alice", self.domain)
    }

    async fn post_status(&self, text: &str, visibility: &str) -> String {
        let reply = self
            .post(
                "/api/v1/statuses",
                json!({"status": text, "visibility": visibility}),
            )
            .await
            .expect(200);
        reply.json()["id"].as_str().unwrap().to_string()
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Checks a received POST as a peer would: content type, digest, signature by `key` under
/// alice's key id, over `(request-target) host date digest`.
fn assert_signed(ours: &Ours, remote: &Remote, got: &Received, key: &PublicKey) {
    assert_eq!(
        got.headers["content-type"], "application/activity+json",
        "{:?}",
        got.headers
    );
    let request = signatures::Request {
        method: &Method::POST,
        path_and_query: &got.path,
        headers: &got.headers,
        body: &got.body,
        expected_host: &remote.host,
    };
    let signed = signatures::parse(&request, SystemTime::now()).expect("a well-formed signature");
    assert_eq!(signed.key_id, format!("{}#main-key", ours.alice_uri()));
    assert!(
        signed.verify(key),
        "the signature verifies with alice's key"
    );
    let signature = got.headers["signature"].to_str().unwrap();
    assert!(
        signature.contains("headers=\"(request-target) host date digest content-type\""),
        "{signature}"
    );
    // A forged copy (same headers, another body) must not pass: the digest binds the body.
    let forged = signatures::Request {
        body: b"{}",
        ..request
    };
    assert!(signatures::parse(&forged, SystemTime::now()).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_reaches_remote_followers_signed_once_per_shared_inbox() {
    let ours = start().await;
    let shared = Remote::start().await;
    let personal = Remote::start().await;
    shared.actor("bob", true);
    shared.actor("carol", true);
    let dave = personal.actor("dave", false);
    for (remote, name) in [(&shared, "bob"), (&shared, "carol"), (&personal, "dave")] {
        let id = ours.resolve(remote, name).await;
        ours.followed_by(id).await;
    }
    let id = ours.post_status("Hello, fediverse", "public").await;
    let at_shared = shared.wait_for("Create", 1, Duration::from_secs(30)).await;
    let at_personal = personal
        .wait_for("Create", 1, Duration::from_secs(30))
        .await;
    assert_eq!(
        at_shared[0].path, "/inbox",
        "the shared inbox, not bob's or carol's"
    );
    assert_eq!(at_personal[0].path, "/users/dave/inbox");
    assert!(
        at_personal[0].activity()["object"]["cc"] != json!([dave]),
        "no mention, so no personal address"
    );
    // The key exists once the worker has signed with it.
    let key = ours.alice_key().await;
    for (remote, got) in [(&shared, &at_shared[0]), (&personal, &at_personal[0])] {
        assert_signed(&ours, remote, got, &key);
        let create = got.activity();
        assert_eq!(create["actor"], ours.alice_uri());
        assert_eq!(create["@context"][0], AS);
        let note = &create["object"];
        assert_eq!(note["id"], format!("{}/statuses/{id}", ours.alice_uri()));
        assert_eq!(note["to"], json!([PUBLIC]));
        assert_eq!(
            note["cc"],
            json!([format!("{}/followers", ours.alice_uri())])
        );
        assert!(
            note["content"]
                .as_str()
                .unwrap()
                .contains("Hello, fediverse")
        );
    }

    // Followers-only: addressed to the followers, never to the public collection.
    ours.post_status("Only for followers", "private").await;
    let creates = shared.wait_for("Create", 2, Duration::from_secs(30)).await;
    let private = creates[1].activity();
    assert_eq!(
        private["to"],
        json!([format!("{}/followers", ours.alice_uri())])
    );
    assert!(!private.to_string().contains(PUBLIC));

    // Deletion follows the post to the same inboxes, as a Tombstone.
    let reply = reqwest::Client::new()
        .delete(format!("{}/api/v1/statuses/{id}", ours.api.base_url))
        .bearer_auth(&ours.token)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let deletes = personal
        .wait_for("Delete", 1, Duration::from_secs(30))
        .await;
    let delete = deletes[0].activity();
    assert_eq!(delete["object"]["type"], "Tombstone");
    assert_eq!(
        delete["object"]["id"],
        format!("{}/statuses/{id}", ours.alice_uri())
    );
    assert_signed(&ours, &personal, &deletes[0], &key);

    // Still one copy per server of everything.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(shared.received_of("Create").len(), 2);
    assert_eq!(personal.received_of("Create").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_inbox_is_retried_and_a_refusing_one_is_not() {
    let ours = start().await;
    let failing = Remote::start().await;
    let refusing = Remote::start().await;
    failing.actor("erin", false);
    refusing.actor("frank", false);
    failing.answer("/users/erin/inbox", 500);
    refusing.answer("/users/frank/inbox", 404);
    // A 410 from a personal inbox: the account is gone there, its follow ends here.
    refusing.actor("gus", false);
    refusing.answer("/users/gus/inbox", 410);
    let mut gus = 0;
    for (remote, name) in [(&failing, "erin"), (&refusing, "frank"), (&refusing, "gus")] {
        let id = ours.resolve(remote, name).await;
        ours.followed_by(id).await;
        gus = id;
    }
    ours.post_status("Anyone there?", "public").await;

    refusing
        .wait_for("Create", 2, Duration::from_secs(30))
        .await;
    let pg = ours.pg().await;
    eventually(Duration::from_secs(10), "gus's follow to end", || {
        let pg = pg.clone();
        async move {
            let follows: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM follows WHERE account_id = $1)")
                    .bind(gus)
                    .fetch_one(&pg)
                    .await
                    .unwrap();
            (!follows).then_some(())
        }
    })
    .await;
    // The first retry comes after 15 to 25 s (Sidekiq's back-off, retries^4 + 15).
    let tries = failing.wait_for("Create", 2, Duration::from_secs(60)).await;
    assert_eq!(tries[0].body, tries[1].body, "the same activity, again");
    assert_eq!(
        refusing.received_of("Create").len(),
        2,
        "a 404 and a 410 are final"
    );

    let days: Vec<String> = sqlx::query_scalar("SELECT domain FROM delivery_failure_days")
        .fetch_all(&pg)
        .await
        .unwrap();
    assert_eq!(
        days,
        vec![failing.host.clone()],
        "only the failing domain is tracked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_domain_failing_on_seven_days_gets_nothing_until_it_sends_us_an_activity() {
    let ours = start().await;
    let dead = Remote::start().await;
    let alive = Remote::start().await;
    dead.actor("gina", false);
    alive.actor("hank", false);
    dead.answer("/users/gina/inbox", 503);
    for (remote, name) in [(&dead, "gina"), (&alive, "hank")] {
        let id = ours.resolve(remote, name).await;
        ours.followed_by(id).await;
    }
    let pg = ours.pg().await;
    // Six earlier days of failures: today's makes seven.
    sqlx::query(
        "INSERT INTO delivery_failure_days (domain, day) \
         SELECT $1, current_date - d FROM generate_series(1, 6) d",
    )
    .bind(&dead.host)
    .execute(&pg)
    .await
    .unwrap();

    ours.post_status("First", "public").await;
    dead.wait_for("Create", 1, Duration::from_secs(30)).await;
    alive.wait_for("Create", 1, Duration::from_secs(30)).await;
    eventually(
        Duration::from_secs(10),
        "the domain marked unavailable",
        || {
            let pg = pg.clone();
            let host = dead.host.clone();
            async move {
                let marked: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM unavailable_domains WHERE domain = $1)",
                )
                .bind(host)
                .fetch_one(&pg)
                .await
                .unwrap();
                marked.then_some(())
            }
        },
    )
    .await;

    ours.post_status("Second", "public").await;
    alive.wait_for("Create", 2, Duration::from_secs(30)).await;
    // Past the first post's retry (15 to 25 s): dropped too.
    tokio::time::sleep(Duration::from_secs(27)).await;
    assert_eq!(
        dead.received_of("Create").len(),
        1,
        "nothing more to an unavailable domain"
    );

    // The server comes back and sends us an activity: deliveries to it resume.
    dead.answer("/users/gina/inbox", 202);
    let activity = json!({
        "@context": AS,
        "id": format!("{}/likes/1", dead.base),
        "type": "Like",
        "actor": format!("{}/users/gina", dead.base),
        "object": format!("{}/statuses/1", ours.alice_uri()),
    })
    .to_string();
    let url = url::Url::parse(&format!("https://{}/inbox", ours.domain)).unwrap();
    let signed = signatures::sign(
        &dead.signer("gina"),
        &Method::POST,
        &url,
        Some(activity.as_bytes()),
        "application/activity+json",
        SystemTime::now(),
    );
    let reply = reqwest::Client::new()
        .post(format!("{}/inbox", ours.api.base_url))
        .header("host", &ours.domain)
        .header("content-type", "application/activity+json")
        .header("date", signed.date)
        .header("digest", signed.digest.unwrap())
        .header("signature", signed.signature)
        .body(activity)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 202, "{}", reply.text().await.unwrap());
    let marked: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM unavailable_domains WHERE domain = $1) \
             OR EXISTS (SELECT 1 FROM delivery_failure_days WHERE domain = $1)",
    )
    .bind(&dead.host)
    .fetch_one(&pg)
    .await
    .unwrap();
    assert!(!marked, "an incoming activity resets the domain");
    ours.post_status("Third", "public").await;
    dead.wait_for("Create", 2, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn following_a_remote_account_sends_follow_and_undo() {
    let ours = start().await;
    let remote = Remote::start().await;
    let ivan = remote.actor("ivan", true);
    let looked_up = ours
        .get(&format!(
            "/api/v1/accounts/lookup?acct=ivan@{}",
            remote.host
        ))
        .await
        .expect(200)
        .json();
    assert_eq!(looked_up["acct"], format!("ivan@{}", remote.host));
    let id = looked_up["id"].as_str().unwrap().to_string();

    let relationship = ours
        .post(&format!("/api/v1/accounts/{id}/follow"), json!({}))
        .await
        .expect(200)
        .json();
    assert_eq!(relationship["requested"], true, "until the remote accepts");
    assert_eq!(relationship["following"], false);
    let follows = remote.wait_for("Follow", 1, Duration::from_secs(30)).await;
    assert_eq!(
        follows[0].path, "/users/ivan/inbox",
        "a Follow goes to its target"
    );
    let follow = follows[0].activity();
    assert_eq!(follow["actor"], ours.alice_uri());
    assert_eq!(follow["object"], ivan);
    assert_signed(&ours, &remote, &follows[0], &ours.alice_key().await);

    ours.post(&format!("/api/v1/accounts/{id}/unfollow"), json!({}))
        .await
        .expect(200);
    let undos = remote.wait_for("Undo", 1, Duration::from_secs(30)).await;
    let undo = undos[0].activity();
    let mut undone = follow.clone();
    undone.as_object_mut().unwrap().remove("@context");
    assert_eq!(
        undo["object"], undone,
        "the Undo carries the Follow it undoes"
    );

    // A remote request to alice, authorized through the API: its server gets an Accept of
    // its own Follow (by the id it sent), from alice.
    let follow_uri = format!("{}/follows/1", remote.base);
    sqlx::query(
        "INSERT INTO follow_requests (account_id, target_account_id, uri) VALUES ($1, $2, $3)",
    )
    .bind(id.parse::<i64>().unwrap())
    .bind(ours.alice)
    .bind(&follow_uri)
    .execute(&ours.pg().await)
    .await
    .unwrap();
    ours.post(
        &format!("/api/v1/follow_requests/{id}/authorize"),
        json!({}),
    )
    .await
    .expect(200);
    let accepts = remote.wait_for("Accept", 1, Duration::from_secs(30)).await;
    let accept = accepts[0].activity();
    assert_eq!(accept["actor"], ours.alice_uri());
    assert_eq!(accept["object"]["id"], follow_uri);
    assert_eq!(accept["object"]["actor"], ivan);

    // Unknown accounts are not found, and nothing is stored for them.
    ours.get(&format!(
        "/api/v1/accounts/lookup?acct=nobody@{}",
        remote.host
    ))
    .await
    .expect(404);
}

#[tokio::test(flavor = "multi_thread")]
async fn search_resolves_remote_accounts_by_handle_and_by_url() {
    let ours = start().await;
    let remote = Remote::start().await;
    remote.actor("judy", true);
    let kim = remote.actor("kim", false);

    // Without resolve, nothing is asked of the remote.
    let q = urlencode(&format!("@judy@{}", remote.host));
    let none = ours
        .get(&format!("/api/v2/search?type=accounts&q={q}"))
        .await
        .expect(200)
        .json();
    assert_eq!(none["accounts"], json!([]));

    let judy = ours.resolve(&remote, "judy").await;
    let stored: (String, Option<String>, String) =
        sqlx::query_as("SELECT username, shared_inbox_url, inbox_url FROM accounts WHERE id = $1")
            .bind(judy)
            .fetch_one(&ours.pg().await)
            .await
            .unwrap();
    assert_eq!(stored.0, "judy");
    assert_eq!(stored.1, Some(format!("{}/inbox", remote.base)));

    let by_url = ours
        .get(&format!(
            "/api/v2/search?resolve=true&q={}",
            urlencode(&kim)
        ))
        .await
        .expect(200)
        .json();
    assert_eq!(
        by_url["accounts"][0]["acct"],
        format!("kim@{}", remote.host)
    );

    let unknown = ours
        .get(&format!(
            "/api/v2/search?resolve=true&type=accounts&q={}",
            urlencode(&format!("@nobody@{}", remote.host))
        ))
        .await
        .expect(200)
        .json();
    assert_eq!(unknown["accounts"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn likes_boosts_edits_blocks_and_profile_changes_are_sent() {
    let ours = start().await;
    let remote = Remote::start().await;
    let lena = remote.actor("lena", true);
    let lena_id = ours.resolve(&remote, "lena").await;
    ours.followed_by(lena_id).await;
    // A status of lena's, as the inbox stores one.
    let note_uri = format!("{lena}/statuses/1");
    let status: i64 = sqlx::query_scalar(
        "INSERT INTO statuses (account_id, uri, content_html, visibility, local) \
         VALUES ($1, $2, '<p>hi</p>', 'public', false) RETURNING id",
    )
    .bind(lena_id)
    .bind(&note_uri)
    .fetch_one(&ours.pg().await)
    .await
    .unwrap();

    // A like goes to the author only, at her own inbox.
    ours.post(&format!("/api/v1/statuses/{status}/favourite"), json!({}))
        .await
        .expect(200);
    let likes = remote.wait_for("Like", 1, Duration::from_secs(30)).await;
    assert_eq!(likes[0].path, "/users/lena/inbox");
    assert_eq!(likes[0].activity()["object"], note_uri);
    ours.post(&format!("/api/v1/statuses/{status}/unfavourite"), json!({}))
        .await
        .expect(200);
    let undo = remote.wait_for("Undo", 1, Duration::from_secs(30)).await[0].activity();
    assert_eq!(undo["object"]["type"], "Like");
    assert_eq!(undo["object"]["id"], likes[0].activity()["id"]);

    // A boost is announced to the followers (and the author): one shared inbox here.
    let reblog = ours
        .post(&format!("/api/v1/statuses/{status}/reblog"), json!({}))
        .await
        .expect(200)
        .json();
    let announces = remote
        .wait_for("Announce", 1, Duration::from_secs(30))
        .await;
    assert_eq!(announces[0].path, "/inbox");
    let announce = announces[0].activity();
    assert_eq!(announce["object"], note_uri);
    assert_eq!(announce["to"], json!([PUBLIC]));
    assert!(announce["cc"].as_array().unwrap().contains(&json!(lena)));
    ours.post(&format!("/api/v1/statuses/{status}/unreblog"), json!({}))
        .await
        .expect(200);
    let undos = remote.wait_for("Undo", 2, Duration::from_secs(30)).await;
    let undo = undos[1].activity();
    assert_eq!(undo["object"]["type"], "Announce");
    assert_eq!(undo["object"]["id"], announce["id"]);
    let _ = reblog;

    // An edit is an Update of the Note.
    let id = ours.post_status("Frist", "public").await;
    remote.wait_for("Create", 1, Duration::from_secs(30)).await;
    let reply = reqwest::Client::new()
        .put(format!("{}/api/v1/statuses/{id}", ours.api.base_url))
        .bearer_auth(&ours.token)
        .json(&json!({"status": "First"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let updates = remote.wait_for("Update", 1, Duration::from_secs(30)).await;
    let update = updates[0].activity();
    assert_eq!(update["object"]["type"], "Note");
    assert!(
        update["object"]["content"]
            .as_str()
            .unwrap()
            .contains("First")
    );
    assert!(update["object"]["updated"].is_string());

    // A profile change is an Update of the actor, with its key.
    let reply = reqwest::Client::new()
        .patch(format!(
            "{}/api/v1/accounts/update_credentials",
            ours.api.base_url
        ))
        .bearer_auth(&ours.token)
        .json(&json!({"display_name": "Alice A."}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let updates = remote.wait_for("Update", 2, Duration::from_secs(30)).await;
    let person = &updates[1].activity()["object"];
    assert_eq!(person["type"], "Person");
    assert_eq!(person["name"], "Alice A.");
    assert!(person["publicKey"]["publicKeyPem"].is_string());

    // A block goes to the blocked account, and the follows it ends, both ways, are ended
    // there explicitly first (Mastodon's BlockService): an Undo of alice's Follow, a
    // Reject of lena's (by the id lena's server gave it).
    let lena_follow = format!("{}/follows/lena-1", remote.base);
    sqlx::query("UPDATE follows SET uri = $2 WHERE account_id = $1")
        .bind(lena_id)
        .bind(&lena_follow)
        .execute(&ours.pg().await)
        .await
        .unwrap();
    ours.post(&format!("/api/v1/accounts/{lena_id}/follow"), json!({}))
        .await
        .expect(200);
    remote.wait_for("Follow", 1, Duration::from_secs(30)).await;
    ours.post(&format!("/api/v1/accounts/{lena_id}/block"), json!({}))
        .await
        .expect(200);
    let blocks = remote.wait_for("Block", 1, Duration::from_secs(30)).await;
    assert_eq!(blocks[0].path, "/users/lena/inbox");
    assert_eq!(blocks[0].activity()["object"], lena);
    let undos = remote.wait_for("Undo", 3, Duration::from_secs(30)).await;
    let unfollow = undos[2].activity();
    assert_eq!(unfollow["object"]["type"], "Follow");
    assert_eq!(unfollow["object"]["object"], lena);
    let rejects = remote.wait_for("Reject", 1, Duration::from_secs(30)).await;
    assert_eq!(rejects[0].path, "/users/lena/inbox");
    let reject = rejects[0].activity();
    assert_eq!(reject["actor"], ours.alice_uri());
    assert_eq!(reject["object"]["id"], lena_follow);
    assert_eq!(reject["object"]["actor"], lena);
    let key = ours.alice_key().await;
    for got in remote.received() {
        assert_signed(&ours, &remote, &got, &key);
    }
}
