//! The documents peers fetch, over HTTP against a real server: WebFinger, host-meta, actors
//! (the fields Mastodon requires to accept one), statuses as Notes with their addressing,
//! collections, and content negotiation.

mod common;

use common::*;
use fedi_server::federation::keys::PublicKey;
use serde_json::Value;

const AS_PUBLIC: &str = "https://www.w3.org/ns/activitystreams#Public";
const AP: &str = "application/activity+json";

struct Api {
    server: Server,
    db: String,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Self {
        let (server, db) = api_on_fresh_database(&[]).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { server, db, http }
    }

    async fn get(&self, path: &str, accept: &str) -> Reply {
        Reply::read(
            self.http
                .get(format!("{}{path}", self.server.base_url))
                .header("accept", accept)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn ap(&self, path: &str) -> Value {
        let reply = self.get(path, AP).await.expect(200);
        assert_eq!(
            reply.header("content-type"),
            Some("application/activity+json; charset=utf-8"),
            "{path}"
        );
        reply.json()
    }

    async fn post_status(&self, token: &str, form: &[(&str, &str)]) -> String {
        let reply = Reply::read(
            self.http
                .post(format!("{}/api/v1/statuses", self.server.base_url))
                .bearer_auth(token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(form).unwrap())
                .send()
                .await
                .unwrap(),
        )
        .await
        .expect(200);
        reply.json()["id"].as_str().unwrap().to_string()
    }

    async fn sql(&self, query: &str) {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.db)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(query.to_string()))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn webfinger_and_host_meta_lead_peers_to_the_actor() {
    let api = Api::start().await;
    create_user(&api.db, "alice", "pw-alice-123456").await;

    for resource in [
        "acct:alice@test.example",
        "acct:Alice@TEST.example",
        "https://test.example/users/alice",
        "https://test.example/@alice",
    ] {
        let reply = api
            .get(
                &format!(
                    "/.well-known/webfinger?resource={}",
                    fedi_server::text::percent_encode(resource)
                ),
                "application/jrd+json",
            )
            .await
            .expect(200);
        assert_eq!(
            reply.header("content-type"),
            Some("application/jrd+json; charset=utf-8")
        );
        let jrd = reply.json();
        assert_eq!(jrd["subject"], "acct:alice@test.example", "{resource}");
        let links = jrd["links"].as_array().unwrap();
        let link = |rel: &str| links.iter().find(|l| l["rel"] == rel).cloned().unwrap();
        assert_eq!(link("self")["type"], AP);
        assert_eq!(link("self")["href"], "https://test.example/users/alice");
        assert_eq!(
            link("http://webfinger.net/rel/profile-page")["href"],
            "https://test.example/@alice"
        );
        assert!(
            link("http://ostatus.org/schema/1.0/subscribe")["template"]
                .as_str()
                .unwrap()
                .contains("{uri}")
        );
    }
    let instance = api
        .get(
            "/.well-known/webfinger?resource=acct:test.example@test.example",
            "*/*",
        )
        .await
        .expect(200)
        .json();
    assert_eq!(instance["links"][1]["href"], "https://test.example/actor");

    for missing in [
        "acct:nobody@test.example",
        "acct:alice@other.example",
        "acct:alice@test.example.evil.example",
    ] {
        api.get(&format!("/.well-known/webfinger?resource={missing}"), "*/*")
            .await
            .expect(404);
    }
    let bad = api.get("/.well-known/webfinger", "*/*").await.expect(400);
    assert!(bad.json()["error"].as_str().unwrap().contains("resource"));

    let host_meta = api.get("/.well-known/host-meta", "*/*").await.expect(200);
    assert_eq!(
        host_meta.header("content-type"),
        Some("application/xrd+xml; charset=utf-8")
    );
    assert!(host_meta.text().contains(
        "<Link rel=\"lrdd\" template=\"https://test.example/.well-known/webfinger?resource={uri}\"/>"
    ));
}

#[tokio::test]
async fn the_actor_has_everything_mastodon_requires() {
    let api = Api::start().await;
    let (alice_id, _) = create_user(&api.db, "alice", "pw-alice-123456").await;
    api.sql(&format!(
        "UPDATE accounts SET display_name = 'Alice A', note = 'Hi <there>', locked = true, \
         fields = '[{{\"name\": \"Site\", \"value\": \"https://alice.example\"}}]' \
         WHERE id = {alice_id}"
    ))
    .await;

    let actor = api.ap("/users/alice").await;
    let id = "https://test.example/users/alice";
    assert_eq!(actor["id"], id);
    assert_eq!(actor["type"], "Person");
    assert_eq!(actor["preferredUsername"], "alice");
    assert_eq!(actor["name"], "Alice A");
    assert_eq!(actor["summary"], "<p>Hi &lt;there&gt;</p>");
    assert_eq!(actor["url"], "https://test.example/@alice");
    for (field, path) in [
        ("inbox", "/inbox"),
        ("outbox", "/outbox"),
        ("followers", "/followers"),
        ("following", "/following"),
        ("featured", "/collections/featured"),
    ] {
        assert_eq!(actor[field], format!("{id}{path}"), "{field}");
    }
    assert_eq!(
        actor["endpoints"]["sharedInbox"],
        "https://test.example/inbox"
    );
    assert_eq!(actor["manuallyApprovesFollowers"], true);
    assert_eq!(actor["discoverable"], true);
    assert!(
        actor["published"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00.000Z")
    );
    let context = actor["@context"].as_array().unwrap();
    assert_eq!(context[0], "https://www.w3.org/ns/activitystreams");
    assert_eq!(context[1], "https://w3id.org/security/v1");
    assert_eq!(context[2]["toot"], "http://joinmastodon.org/ns#");
    assert_eq!(context[2]["schema"], "http://schema.org#");
    assert_eq!(context[2]["PropertyValue"], "schema:PropertyValue");
    let field = &actor["attachment"][0];
    assert_eq!(field["type"], "PropertyValue");
    assert_eq!(field["name"], "Site");
    assert!(
        field["value"]
            .as_str()
            .unwrap()
            .contains("href=\"https://alice.example\"")
    );

    // An account created before keys existed gets one on first fetch, and keeps it.
    let key = &actor["publicKey"];
    assert_eq!(key["id"], format!("{id}#main-key"));
    assert_eq!(key["owner"], id);
    let pem = key["publicKeyPem"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    PublicKey::from_pem(pem).expect("an RSA key of at least 2048 bits");
    let again = api.ap("/users/Alice").await;
    assert_eq!(again["publicKey"]["publicKeyPem"], pem);
    api.get("/users/nobody", AP).await.expect(404);

    // Suspended accounts are not served.
    api.sql(&format!(
        "UPDATE accounts SET suspended_at = now() WHERE id = {alice_id}"
    ))
    .await;
    api.get("/users/alice", AP).await.expect(404);

    let instance = api.ap("/actor").await;
    assert_eq!(instance["id"], "https://test.example/actor");
    assert_eq!(instance["type"], "Application");
    assert_eq!(instance["preferredUsername"], "test.example");
    assert_eq!(
        instance["publicKey"]["id"],
        "https://test.example/actor#main-key"
    );
    PublicKey::from_pem(instance["publicKey"]["publicKeyPem"].as_str().unwrap()).unwrap();
    assert_eq!(
        api.ap("/actor").await["publicKey"],
        instance["publicKey"],
        "the instance key is generated once"
    );
}

#[tokio::test]
async fn registration_gives_the_new_account_a_key_pair() {
    let api = Api::start().await;
    let app = issue_token(&api.db, None, "write:accounts").await;
    Reply::read(
        api.http
            .post(format!("{}/api/v1/accounts", api.server.base_url))
            .bearer_auth(&app)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                serde_urlencoded::to_string([
                    ("username", "carol"),
                    ("email", "carol@mail.example"),
                    ("password", "a-long-password-1"),
                    ("agreement", "true"),
                    ("locale", "en"),
                ])
                .unwrap(),
            )
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(200);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&api.db)
        .await
        .unwrap();
    let (pem,): (String,) = sqlx::query_as(
        "SELECT k.public_key_pem FROM account_keys k JOIN accounts a ON a.id = k.account_id \
         WHERE a.username = 'carol'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        api.ap("/users/carol").await["publicKey"]["publicKeyPem"],
        pem.as_str()
    );

    // The admin CLI's accounts too.
    let out = server_command(&api.db, "redis://unused.invalid")
        .args([
            "admin",
            "accounts",
            "create",
            "dave",
            "--email",
            "dave@mail.example",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (count,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM account_keys k JOIN accounts a ON a.id = k.account_id \
         WHERE a.username = 'dave' AND k.private_key_pem LIKE '-----BEGIN PRIVATE KEY-----%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn content_negotiation_serves_json_to_peers_and_the_web_page_to_browsers() {
    let api = Api::start().await;
    let (_, user) = create_user(&api.db, "alice", "pw-alice-123456").await;
    let token = issue_token(&api.db, Some(user), "read write").await;
    let status = api.post_status(&token, &[("status", "hello")]).await;

    for accept in [
        "application/activity+json",
        "application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"",
        "text/html;q=0.9, application/activity+json",
    ] {
        let reply = api.get("/users/alice", accept).await.expect(200);
        assert_eq!(reply.json()["type"], "Person", "{accept}");
        assert_eq!(reply.header("vary"), Some("Accept"));
    }
    for accept in ["text/html", "*/*"] {
        let reply = api.get("/users/alice", accept).await;
        assert!(
            matches!(reply.status, 302 | 303),
            "{accept}: {}",
            reply.status
        );
        assert_eq!(reply.header("location"), Some("/@alice"));
        let reply = api
            .get(&format!("/users/alice/statuses/{status}"), accept)
            .await;
        assert!(matches!(reply.status, 302 | 303));
        assert_eq!(
            reply.header("location"),
            Some(format!("/@alice/{status}").as_str())
        );
    }
}

#[tokio::test]
async fn notes_are_addressed_by_visibility_and_private_ones_are_never_served() {
    let api = Api::start().await;
    let (_, alice) = create_user(&api.db, "alice", "pw-alice-123456").await;
    let (bob_id, _) = create_user(&api.db, "bob", "pw-bob-1234567").await;
    let token = issue_token(&api.db, Some(alice), "read write").await;
    let followers = "https://test.example/users/alice/followers";
    let bob = "https://test.example/users/bob";

    let mut ids = Vec::new();
    for visibility in ["public", "unlisted", "private", "direct"] {
        ids.push(
            api.post_status(
                &token,
                &[
                    ("status", &format!("{visibility} for @bob #Fedi")),
                    ("visibility", visibility),
                ],
            )
            .await,
        );
    }
    let public = api.ap(&format!("/users/alice/statuses/{}", ids[0])).await;
    let uri = format!("https://test.example/users/alice/statuses/{}", ids[0]);
    assert_eq!(public["id"], uri);
    assert_eq!(public["type"], "Note");
    assert_eq!(public["attributedTo"], "https://test.example/users/alice");
    assert_eq!(
        public["url"],
        format!("https://test.example/@alice/{}", ids[0])
    );
    assert_eq!(public["to"], serde_json::json!([AS_PUBLIC]));
    assert_eq!(public["cc"], serde_json::json!([followers, bob]));
    assert_eq!(public["sensitive"], false);
    assert!(public["summary"].is_null());
    assert!(public["content"].as_str().unwrap().contains("public for"));
    let tags = public["tag"].as_array().unwrap();
    assert!(
        tags.iter().any(|t| t["type"] == "Mention"
            && t["href"] == bob
            && t["name"] == "@bob@test.example")
    );
    assert!(tags.iter().any(|t| {
        t["type"] == "Hashtag"
            && t["name"] == "#fedi"
            && t["href"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case("https://test.example/tags/fedi")
    }));
    assert_eq!(
        public["@context"][0],
        "https://www.w3.org/ns/activitystreams"
    );

    let unlisted = api.ap(&format!("/users/alice/statuses/{}", ids[1])).await;
    assert_eq!(unlisted["to"], serde_json::json!([followers]));
    assert_eq!(unlisted["cc"], serde_json::json!([AS_PUBLIC, bob]));

    // Followers-only and direct posts: not to anonymous fetches, in no form.
    for id in &ids[2..] {
        for path in [
            format!("/users/alice/statuses/{id}"),
            format!("/users/alice/statuses/{id}/activity"),
        ] {
            api.get(&path, AP).await.expect(404);
        }
    }
    // Not under another author's name either.
    api.get(&format!("/users/bob/statuses/{}", ids[0]), AP)
        .await
        .expect(404);

    let create = api
        .ap(&format!("/users/alice/statuses/{}/activity", ids[0]))
        .await;
    assert_eq!(create["type"], "Create");
    assert_eq!(create["id"], format!("{uri}/activity"));
    assert_eq!(create["actor"], "https://test.example/users/alice");
    assert_eq!(create["object"]["id"], uri);
    assert_eq!(create["to"], public["to"]);
    assert_eq!(create["cc"], public["cc"]);

    // A reply with a content warning.
    let reply_id = api
        .post_status(
            &token,
            &[
                ("status", "a reply"),
                ("in_reply_to_id", &ids[0]),
                ("spoiler_text", "careful"),
            ],
        )
        .await;
    let reply = api.ap(&format!("/users/alice/statuses/{reply_id}")).await;
    assert_eq!(reply["inReplyTo"], uri);
    assert_eq!(reply["summary"], "careful");
    assert_eq!(reply["sensitive"], true);

    // The outbox holds the public and unlisted posts only.
    let outbox = api.ap("/users/alice/outbox").await;
    assert_eq!(outbox["type"], "OrderedCollection");
    assert_eq!(outbox["totalItems"], 3);
    let first = outbox["first"].as_str().unwrap();
    let page = api
        .ap(first.strip_prefix("https://test.example").unwrap())
        .await;
    assert_eq!(page["type"], "OrderedCollectionPage");
    let items: Vec<&str> = page["orderedItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["object"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(items[0].ends_with(&reply_id) && items[2].ends_with(&ids[0]));
    assert!(
        !items
            .iter()
            .any(|i| i.ends_with(&ids[2]) || i.ends_with(&ids[3]))
    );

    // Followers and following: counts and pages of actor ids.
    api.sql(&format!(
        "INSERT INTO follows (account_id, target_account_id) \
         SELECT {bob_id}, account_id FROM users WHERE id = {alice}"
    ))
    .await;
    let followers_doc = api.ap("/users/alice/followers").await;
    assert_eq!(followers_doc["totalItems"], 1);
    let page = api.ap("/users/alice/followers?page=1").await;
    assert_eq!(page["orderedItems"], serde_json::json!([bob]));
    assert_eq!(
        api.ap("/users/bob/following?page=1").await["orderedItems"][0],
        "https://test.example/users/alice"
    );
    assert_eq!(api.ap("/users/alice/following").await["totalItems"], 0);
    // A hidden social graph shows its size only, on every page.
    api.sql(&format!(
        "UPDATE accounts SET hide_collections = true \
         WHERE id = (SELECT account_id FROM users WHERE id = {alice})"
    ))
    .await;
    for path in ["/users/alice/followers", "/users/alice/followers?page=1"] {
        let hidden = api.ap(path).await;
        assert_eq!(hidden["totalItems"], 1, "{path}");
        assert!(hidden.get("orderedItems").is_none() && hidden.get("first").is_none());
    }
    assert_eq!(
        api.ap("/users/alice/collections/featured").await["type"],
        "OrderedCollection"
    );
}
