//! The inbox over HTTP: a test "remote server" on a loopback port (allowed only through
//! `FEDI_FEDERATION_ALLOW_LOOPBACK`) publishes actors with test keys; signed deliveries are
//! accepted and queued on `ingress`, every broken rule gets a 401 and queues nothing.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use common::*;
use fedi_server::federation::keys::{self, Signer};
use fedi_server::federation::signatures;
use serde_json::{Value, json};
use sha2::Digest;

const AS: &str = "https://www.w3.org/ns/activitystreams";
const AP: &str = "application/activity+json";

/// What the remote server answers on a path.
#[derive(Clone)]
struct Doc {
    status: u16,
    content_type: &'static str,
    location: Option<String>,
    body: String,
}

#[derive(Clone)]
struct Remote {
    base: String,
    docs: Arc<Mutex<HashMap<String, Doc>>>,
}

impl Remote {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let docs: Arc<Mutex<HashMap<String, Doc>>> = Arc::default();
        let served = docs.clone();
        let app = axum::Router::new().fallback(move |uri: Uri| {
            let docs = served.clone();
            async move {
                let doc = docs.lock().unwrap().get(uri.path()).cloned();
                match doc {
                    None => StatusCode::NOT_FOUND.into_response(),
                    Some(d) => {
                        let mut r = (
                            StatusCode::from_u16(d.status).unwrap(),
                            [("content-type", d.content_type)],
                            d.body,
                        )
                            .into_response();
                        if let Some(l) = d.location {
                            r.headers_mut().insert("location", l.parse().unwrap());
                        }
                        r
                    }
                }
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, docs }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn put(&self, path: &str, doc: Doc) {
        self.docs.lock().unwrap().insert(path.into(), doc);
    }

    fn redirect(&self, path: &str, to: &str) {
        self.put(
            path,
            Doc {
                status: 302,
                content_type: "text/plain",
                location: Some(to.into()),
                body: String::new(),
            },
        );
    }

    /// Publishes at `path` an actor document claiming the id `id`, with the key `pair`;
    /// returns the signer of that key.
    fn actor_with(
        &self,
        path: &str,
        id: &str,
        content_type: &'static str,
        pair: &keys::KeyPair,
    ) -> Signer {
        let key_id = format!("{}#main-key", self.url(path));
        let body = json!({
            "@context": [AS, "https://w3id.org/security/v1"],
            "id": id,
            "type": "Person",
            "inbox": format!("{id}/inbox"),
            "preferredUsername": path.rsplit('/').next().unwrap(),
            "publicKey": {"id": key_id, "owner": id, "publicKeyPem": pair.public_pem},
        });
        self.put(
            path,
            Doc {
                status: 200,
                content_type,
                location: None,
                body: body.to_string(),
            },
        );
        Signer::new(key_id, &pair.private_pem).unwrap()
    }

    fn actor(&self, path: &str, id: &str, content_type: &'static str) -> Signer {
        self.actor_with(path, id, content_type, &keys::generate().unwrap())
    }
}

/// A Follow by `actor` with a fresh id; returns the id and the body.
fn follow(remote: &Remote, actor: &str) -> (String, Vec<u8>) {
    let id = format!(
        "{}/activities/{}",
        remote.base,
        fedi_server::auth::credentials::new_secret()
    );
    let body = json!({
        "@context": AS,
        "id": id,
        "type": "Follow",
        "actor": actor,
        "object": "https://test.example/users/alice",
    });
    (id, body.to_string().into_bytes())
}

/// POSTs `sent_body` to `path` with `Host: host`, signed (when `signer` is given) over
/// `signed_body` at `when`: the two bodies differ to test digests.
async fn deliver_raw(
    server: &Ours,
    path: &str,
    host: &str,
    signer: Option<&Signer>,
    signed_body: &[u8],
    sent_body: &[u8],
    when: SystemTime,
) -> Reply {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", server.server.base_url))
        .header("host", host)
        .header("content-type", AP)
        .body(sent_body.to_vec());
    if let Some(signer) = signer {
        let url = url::Url::parse(&format!("https://{host}{path}")).unwrap();
        let signed = signatures::sign(signer, &Method::POST, &url, Some(signed_body), AP, when);
        request = request
            .header("date", signed.date)
            .header("digest", signed.digest.unwrap())
            .header("signature", signed.signature);
    }
    Reply::read(request.send().await.unwrap()).await
}

async fn deliver(server: &Ours, path: &str, signer: &Signer, body: &[u8]) -> Reply {
    deliver_raw(
        server,
        path,
        &server.domain,
        Some(signer),
        body,
        body,
        SystemTime::now(),
    )
    .await
}

/// The `ingress` jobs carrying the activity `id`. The stream is found by pattern: its key
/// layout is the job queue's business, the queue name is what matters here.
async fn queued(id: &str) -> Vec<Value> {
    let client = redis::Client::open(service_env("FEDI_TEST_REDIS_URL")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let streams: Vec<String> = redis::cmd("KEYS")
        .arg("{fedi:jobs:*ingress}:stream")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut jobs = Vec::new();
    for stream in streams {
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&stream)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        jobs.extend(
            entries
                .ids
                .iter()
                .filter_map(|e| e.get::<String>("job"))
                .map(|j| serde_json::from_str::<Value>(&j).unwrap())
                .filter(|j| j["args"]["activity"]["id"] == id),
        );
    }
    jobs
}

/// Our server, on a domain of its own: the job queue's keys carry the domain, so that no
/// worker another test runs on the shared Redis takes this test's ingress jobs.
struct Ours {
    server: Server,
    domain: String,
}

async fn start() -> (Ours, String, Remote) {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let domain = format!(
        "inbox-{}-{}.test",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let (server, db) = api_on_fresh_database(&[
        ("FEDI_FEDERATION_ALLOW_LOOPBACK", "true"),
        ("FEDI_DOMAIN", &domain),
    ])
    .await;
    create_user(&db, "alice", "pw-alice-123456").await;
    (Ours { server, domain }, db, Remote::start().await)
}

#[track_caller]
fn refused(reply: Reply, needle: &str) {
    let reply = reply.expect(401);
    let error = reply.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains(needle), "{error:?} lacks {needle:?}");
}

#[tokio::test]
async fn a_signed_activity_from_its_actor_is_accepted_and_queued() {
    let (server, db, remote) = start().await;
    let bob_id = remote.url("/users/bob");
    let bob = remote.actor("/users/bob", &bob_id, AP);

    let (id, body) = follow(&remote, &bob_id);
    deliver(&server, "/inbox", &bob, &body).await.expect(202);
    let jobs = queued(&id).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["kind"], fedi_server::federation::INGRESS_JOB);
    assert_eq!(jobs[0]["args"]["signer"], bob_id);
    assert!(jobs[0]["args"]["inbox_account_id"].is_null());

    // The key is cached with its owner.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let (owner,): (String,) = sqlx::query_as("SELECT owner FROM remote_keys WHERE key_id = $1")
        .bind(&bob.key_id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(owner, bob_id);

    // A personal inbox names its account; a missing one is a 404.
    let (id, body) = follow(&remote, &bob_id);
    deliver(&server, "/users/alice/inbox", &bob, &body)
        .await
        .expect(202);
    let (alice_id,): (i64,) = sqlx::query_as("SELECT id FROM accounts WHERE username = 'alice'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        queued(&id).await[0]["args"]["inbox_account_id"],
        alice_id.to_string()
    );
    let (_, body) = follow(&remote, &bob_id);
    deliver(&server, "/users/nobody/inbox", &bob, &body)
        .await
        .expect(404);
}

#[tokio::test]
async fn forged_tampered_stale_and_impersonating_deliveries_are_refused() {
    let (server, _db, remote) = start().await;
    let bob_id = remote.url("/users/bob");
    let bob = remote.actor("/users/bob", &bob_id, AP);
    let carol_id = remote.url("/users/carol");
    remote.actor("/users/carol", &carol_id, AP);
    let now = SystemTime::now();
    let hours = |h: u64| Duration::from_secs(h * 3600);
    let mut ids = Vec::new();

    let (id, body) = follow(&remote, &bob_id);
    ids.push(id);
    refused(
        deliver_raw(&server, "/inbox", &server.domain, None, &body, &body, now).await,
        "Request not signed",
    );

    // Bob's key id, someone else's key.
    let forger = Signer::new(bob.key_id.clone(), &keys::generate().unwrap().private_pem).unwrap();
    let (id, body) = follow(&remote, &bob_id);
    ids.push(id);
    refused(
        deliver(&server, "/inbox", &forger, &body).await,
        "Verification failed",
    );

    let (id, body) = follow(&remote, &bob_id);
    let (other_id, other) = follow(&remote, &bob_id);
    ids.extend([id, other_id]);
    refused(
        deliver_raw(
            &server,
            "/inbox",
            &server.domain,
            Some(&bob),
            &body,
            &other,
            now,
        )
        .await,
        "Body does not match the signed digest",
    );

    let (id, body) = follow(&remote, &bob_id);
    ids.push(id);
    for (when, error) in [(now - hours(2), "expired"), (now + hours(2), "future")] {
        refused(
            deliver_raw(
                &server,
                "/inbox",
                &server.domain,
                Some(&bob),
                &body,
                &body,
                when,
            )
            .await,
            error,
        );
    }
    // Signed for another server: replayed here, the host does not match.
    refused(
        deliver_raw(
            &server,
            "/inbox",
            "other.example",
            Some(&bob),
            &body,
            &body,
            now,
        )
        .await,
        "host",
    );

    // Bob signs an activity claiming to be Carol's.
    let (id, body) = follow(&remote, &carol_id);
    ids.push(id);
    refused(
        deliver(&server, "/inbox", &bob, &body).await,
        "not by the activity's actor",
    );

    for id in ids {
        assert!(queued(&id).await.is_empty(), "{id} was queued");
    }
}

#[tokio::test]
async fn keys_are_fetched_only_from_documents_that_are_what_they_claim() {
    let (server, _db, remote) = start().await;

    // The document at /users/liar claims to be another actor.
    let liar = remote.actor("/users/liar", &remote.url("/users/someone-else"), AP);
    let (_, body) = follow(&remote, &remote.url("/users/liar"));
    refused(
        deliver(&server, "/inbox", &liar, &body).await,
        "differs from its URL",
    );

    // Plain JSON (an uploaded file could be served so) is not an actor.
    let plain_id = remote.url("/users/plain");
    let plain = remote.actor("/users/plain", &plain_id, "application/json");
    let (_, body) = follow(&remote, &plain_id);
    refused(
        deliver(&server, "/inbox", &plain, &body).await,
        "content type",
    );

    // A key whose URL redirects to a private address.
    remote.redirect("/users/sneaky", "http://10.0.0.1/users/sneaky");
    let sneaky = Signer::new(
        format!("{}#main-key", remote.url("/users/sneaky")),
        &keys::generate().unwrap().private_pem,
    )
    .unwrap();
    let (_, body) = follow(&remote, &remote.url("/users/sneaky"));
    refused(
        deliver(&server, "/inbox", &sneaky, &body).await,
        "not a public address",
    );

    // Two redirects are one too many, even towards a valid actor.
    let dave_id = remote.url("/users/dave");
    remote.actor("/users/dave", &dave_id, AP);
    remote.redirect("/users/hop1", &remote.url("/users/hop2"));
    remote.redirect("/users/hop2", &dave_id);
    let hop = Signer::new(
        format!("{}#main-key", remote.url("/users/hop1")),
        &keys::generate().unwrap().private_pem,
    )
    .unwrap();
    let (_, body) = follow(&remote, &dave_id);
    refused(
        deliver(&server, "/inbox", &hop, &body).await,
        "more than one redirect",
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_again_once() {
    let (server, db, remote) = start().await;
    let bob_id = remote.url("/users/bob");
    let old = keys::generate().unwrap();
    let old_signer = remote.actor_with("/users/bob", &bob_id, AP, &old);
    let (_, body) = follow(&remote, &bob_id);
    deliver(&server, "/inbox", &old_signer, &body)
        .await
        .expect(202);

    let new = keys::generate().unwrap();
    let new_signer = remote.actor_with("/users/bob", &bob_id, AP, &new);
    let (id, body) = follow(&remote, &bob_id);
    deliver(&server, "/inbox", &new_signer, &body)
        .await
        .expect(202);
    assert_eq!(queued(&id).await.len(), 1);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let (pem,): (String,) =
        sqlx::query_as("SELECT public_key_pem FROM remote_keys WHERE key_id = $1")
            .bind(&new_signer.key_id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(pem, new.public_pem);

    // The old key no longer verifies, even after the refetch.
    let (_, body) = follow(&remote, &bob_id);
    refused(
        deliver(&server, "/inbox", &old_signer, &body).await,
        "Verification failed",
    );
}

#[tokio::test]
async fn rfc9421_signed_deliveries_are_accepted_and_checked() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let (server, _db, remote) = start().await;
    let bob_id = remote.url("/users/bob");
    let bob = remote.actor("/users/bob", &bob_id, AP);

    // Mastodon 4.5's form: `@method @target-uri content-digest` with `created`.
    let send = |signed_body: Vec<u8>, sent_body: Vec<u8>| {
        let digest = format!(
            "sha-256=:{}:",
            STANDARD.encode(sha2::Sha256::digest(&signed_body))
        );
        let created = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let params = format!(
            "(\"@method\" \"@target-uri\" \"content-digest\");created={created};keyid=\"{}\"",
            bob.key_id
        );
        let base = format!(
            "\"@method\": POST\n\"@target-uri\": https://{}/inbox\n\
             \"content-digest\": {digest}\n\"@signature-params\": {params}",
            server.domain
        );
        let signature = STANDARD.encode(bob.sign(base.as_bytes()));
        reqwest::Client::new()
            .post(format!("{}/inbox", server.server.base_url))
            .header("host", &server.domain)
            .header("content-type", AP)
            .header("content-digest", digest)
            .header("signature-input", format!("sig1={params}"))
            .header("signature", format!("sig1=:{signature}:"))
            .body(sent_body)
            .send()
    };
    let (id, body) = follow(&remote, &bob_id);
    Reply::read(send(body.clone(), body).await.unwrap())
        .await
        .expect(202);
    assert_eq!(queued(&id).await.len(), 1);

    let (id, body) = follow(&remote, &bob_id);
    let (_, other) = follow(&remote, &bob_id);
    refused(
        Reply::read(send(body, other).await.unwrap()).await,
        "Body does not match the signed digest",
    );
    assert!(queued(&id).await.is_empty());
}

#[tokio::test]
async fn oversized_documents_and_bodies_are_refused() {
    let (server, _db, remote) = start().await;
    // An actor document over the 1 MiB limit.
    let huge_id = remote.url("/users/huge");
    let pair = keys::generate().unwrap();
    let key_id = format!("{huge_id}#main-key");
    remote.put(
        "/users/huge",
        Doc {
            status: 200,
            content_type: AP,
            location: None,
            body: json!({
                "id": huge_id,
                "type": "Person",
                "summary": "x".repeat(2 * 1024 * 1024),
                "publicKey": {"id": key_id, "owner": huge_id, "publicKeyPem": pair.public_pem},
            })
            .to_string(),
        },
    );
    let huge = Signer::new(key_id, &pair.private_pem).unwrap();
    let (_, body) = follow(&remote, &huge_id);
    refused(
        deliver(&server, "/inbox", &huge, &body).await,
        "larger than",
    );

    // An activity over the inbox's limit is refused before anything else.
    let bob_id = remote.url("/users/bob");
    let bob = remote.actor("/users/bob", &bob_id, AP);
    let big = json!({"id": "x", "actor": bob_id, "content": "y".repeat(1536 * 1024)})
        .to_string()
        .into_bytes();
    deliver(&server, "/inbox", &bob, &big).await.expect(413);
}

#[tokio::test]
async fn a_peer_trickling_its_key_document_is_cut_at_the_total_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _db, remote) = start().await;
    // A raw peer: headers at once, then a byte a second, each well within the read
    // timeout, the whole far beyond the total one.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/activity+json\r\n\
                            content-length: 100000\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if socket.write_all(b" ").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let slow = Signer::new(
        format!("{slow_base}/users/slow#main-key"),
        &keys::generate().unwrap().private_pem,
    )
    .unwrap();
    let (_, body) = follow(&remote, &format!("{slow_base}/users/slow"));
    let started = std::time::Instant::now();
    refused(deliver(&server, "/inbox", &slow, &body).await, "timed out");
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_secs(29)..Duration::from_secs(45)).contains(&elapsed),
        "cut after {elapsed:?}"
    );
}
