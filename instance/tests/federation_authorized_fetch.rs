//! Authorized fetch (secure mode, `FEDI_FEDERATION_AUTHORIZED_FETCH`) against a real api:
//! statuses, activities and collections only for signed GETs of servers that are not
//! blocked (401 unsigned, 403 blocked); the instance actor, WebFinger and a reduced actor
//! with its key stay public; browsers still get their redirect. Our own fetches are signed
//! by the instance actor, which secure-mode peers require.

mod common;
mod peer;

use common::*;
use fedi_server::federation::keys::{self, Signer};
use peer::*;
use serde_json::{Value, json};

struct Ours {
    api: Server,
    domain: String,
    status: String,
}

async fn start(extra: &[(&str, &str)]) -> Ours {
    install_crypto_provider();
    let db = migrated_database().await;
    let domain = unique_domain();
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let mut env = vec![
        ("FEDI_DOMAIN", domain.as_str()),
        ("FEDI_FEDERATION_ALLOW_LOOPBACK", "true"),
    ];
    env.extend_from_slice(extra);
    let api = start_api_with(&db, &redis, &env).await;
    let (_, user) = create_user(&db, "alice", "pw-alice-123456").await;
    let token = issue_token(&db, Some(user), "read write").await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/statuses", api.base_url))
        .bearer_auth(&token)
        .json(&json!({"status": "hello", "visibility": "public"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let status = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    Ours {
        api,
        domain,
        status,
    }
}

impl Ours {
    async fn get(
        &self,
        path: &str,
        signer: Option<&Signer>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        get_signed(&self.api.base_url, &self.domain, path, signer).await
    }

    fn documents(&self) -> Vec<String> {
        let s = &self.status;
        vec![
            format!("/users/alice/statuses/{s}"),
            format!("/users/alice/statuses/{s}/activity"),
            "/users/alice/outbox".into(),
            "/users/alice/outbox?page=true".into(),
            "/users/alice/followers".into(),
            "/users/alice/following".into(),
            "/users/alice/collections/featured".into(),
        ]
    }
}

#[tokio::test]
async fn secure_mode_serves_documents_to_signed_peers_only() {
    let peer = Peer::start().await;
    let ours = start(&[
        ("FEDI_FEDERATION_AUTHORIZED_FETCH", "true"),
        ("FEDI_FEDERATION_DOMAIN_BLOCKS", "localhost"),
    ])
    .await;
    let (_, friend) = peer.actor(&peer.host("127.0.0.1"), "friend");
    let (_, blocked) = peer.actor(&peer.host("localhost"), "spammer");
    // A key that is not the one the actor publishes.
    let impostor = Signer::new(
        format!("http://{}/users/friend#main-key", peer.host("127.0.0.1")),
        &keys::generate().unwrap().private_pem,
    )
    .unwrap();

    for path in ours.documents() {
        let (status, _, body) = ours.get(&path, None).await;
        assert_eq!(status, 401, "unsigned {path}: {body}");
        assert!(body.contains("Request not signed"), "{body}");
        let (status, headers, body) = ours.get(&path, Some(&friend)).await;
        assert_eq!(status, 200, "signed {path}: {body}");
        assert_eq!(headers["cache-control"], "max-age=60, private", "{path}");
        let (status, _, body) = ours.get(&path, Some(&blocked)).await;
        assert_eq!(status, 403, "blocked {path}: {body}");
        let (status, _, body) = ours.get(&path, Some(&impostor)).await;
        assert_eq!(status, 401, "forged {path}: {body}");
    }
    assert!(
        peer.requests_to(&peer.host("localhost")).is_empty(),
        "a blocked signer's key is never fetched"
    );

    // The actor: reduced for anyone, complete for a signed peer.
    let (status, _, body) = ours.get("/users/alice", None).await;
    assert_eq!(status, 200);
    let reduced: Value = serde_json::from_str(&body).unwrap();
    assert!(
        reduced["publicKey"]["publicKeyPem"]
            .as_str()
            .unwrap()
            .contains("PUBLIC KEY")
    );
    assert!(reduced["inbox"].is_string() && reduced["endpoints"]["sharedInbox"].is_string());
    for hidden in [
        "name",
        "summary",
        "followers",
        "following",
        "url",
        "attachment",
    ] {
        assert!(reduced.get(hidden).is_none(), "{hidden} in {reduced}");
    }
    let (status, _, body) = ours.get("/users/alice", Some(&friend)).await;
    assert_eq!(status, 200);
    let full: Value = serde_json::from_str(&body).unwrap();
    assert!(full["followers"].is_string() && full.get("name").is_some());
    let (status, _, _) = ours.get("/users/alice", Some(&blocked)).await;
    assert_eq!(status, 403);

    // Public whatever the mode: the instance actor (its key verifies our fetches),
    // WebFinger, and the web page a browser is sent to.
    let (status, _, body) = ours.get("/actor", None).await;
    assert_eq!(status, 200, "{body}");
    let r = reqwest::Client::new()
        .get(format!(
            "{}/.well-known/webfinger?resource=acct:alice@{}",
            ours.api.base_url, ours.domain
        ))
        .header("host", &ours.domain)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "{}/users/alice/statuses/{}",
            ours.api.base_url, ours.status
        ))
        .header("host", &ours.domain)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());

    // Verifying the friend's signature fetched its key, signed by our instance actor.
    let fetches: Vec<Request> = peer
        .requests_to(&peer.host("127.0.0.1"))
        .into_iter()
        .filter(|r| r.path == "/users/friend")
        .collect();
    assert!(!fetches.is_empty());
    for fetch in fetches {
        let signature = fetch.headers["signature"].to_str().unwrap();
        assert!(
            signature.contains(&format!("keyId=\"https://{}/actor#main-key\"", ours.domain)),
            "{signature}"
        );
    }
}

#[tokio::test]
async fn open_mode_serves_everyone_but_blocked_signers() {
    let peer = Peer::start().await;
    let ours = start(&[("FEDI_FEDERATION_DOMAIN_BLOCKS", "localhost")]).await;
    let (_, blocked) = peer.actor(&peer.host("localhost"), "spammer");
    for path in ours.documents() {
        let (status, headers, body) = ours.get(&path, None).await;
        assert_eq!(status, 200, "unsigned {path}: {body}");
        assert_eq!(headers["cache-control"], "max-age=60, public", "{path}");
        let (status, _, body) = ours.get(&path, Some(&blocked)).await;
        assert_eq!(status, 403, "blocked {path}: {body}");
    }
    let (status, _, body) = ours.get("/users/alice", None).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["followers"].is_string());
}
