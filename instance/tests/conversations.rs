//! Direct conversations over HTTP against the real server, PostgreSQL, Redis and a
//! `fedi-server worker` (whose fan-out records direct statuses): the Conversation entity
//! for each participant, replies joining the thread's conversation, unread marks, paging by
//! last status, read and delete, scopes, and the `conversation` streaming event.

mod common;

use std::time::Duration;

use common::*;
use reqwest::header;
use serde_json::Value;

struct Api {
    keys: fedi_server::redis_keys::Namespace,
    server: Server,
    _worker: Server,
    db: String,
    http: reqwest::Client,
}

struct User {
    id: String,
    token: String,
}

impl Api {
    async fn start() -> Self {
        install_crypto_provider();
        // Job queues are named by domain: this test's worker takes only its own jobs.
        let domain = unique_domain();
        let env = [("FEDI_DOMAIN", domain.as_str())];
        let (server, db) = api_on_fresh_database(&env).await;
        let worker = start_worker(&db, &service_env("FEDI_TEST_REDIS_URL"), &env);
        Self {
            keys: fedi_server::redis_keys::Namespace::new(&domain),
            server,
            _worker: worker,
            db,
            http: reqwest::Client::new(),
        }
    }

    async fn user_with(&self, username: &str, scopes: &str) -> User {
        let (account_id, user_id) = create_user(&self.db, username, "a long password 123").await;
        User {
            id: account_id.to_string(),
            token: issue_token(&self.db, Some(user_id), scopes).await,
        }
    }

    async fn call(&self, method: &str, path: &str, token: &str, form: &[(&str, &str)]) -> Reply {
        let url = if path.starts_with("http") {
            // A Link header: same path on the test server.
            let path = &path[path.find("/api/").unwrap()..];
            format!("{}{path}", self.server.base_url)
        } else {
            format!("{}{path}", self.server.base_url)
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, url)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if !form.is_empty() {
            req = req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(form).unwrap());
        }
        Reply::read(req.send().await.unwrap()).await
    }

    async fn post_direct(&self, user: &User, text: &str, reply_to: Option<&str>) -> String {
        let mut form = vec![("status", text), ("visibility", "direct")];
        if let Some(r) = reply_to {
            form.push(("in_reply_to_id", r));
        }
        let s = self
            .call("POST", "/api/v1/statuses", &user.token, &form)
            .await
            .expect(200)
            .json();
        s["id"].as_str().unwrap().to_string()
    }

    async fn conversations(&self, user: &User, query: &str) -> Reply {
        self.call(
            "GET",
            &format!("/api/v1/conversations{query}"),
            &user.token,
            &[],
        )
        .await
        .expect(200)
    }

    /// Waits until the worker has recorded `status` into `user`'s conversations.
    async fn until_listed(&self, user: &User, status: &str) -> Value {
        eventually(
            Duration::from_secs(15),
            "the direct status in the conversations",
            || async {
                let list = self.conversations(user, "?limit=40").await.json();
                list.as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["last_status"]["id"] == status)
                    .cloned()
            },
        )
        .await
    }
}

fn account_ids(conversation: &Value) -> Vec<String> {
    let mut ids: Vec<String> = conversation["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn a_direct_thread_is_one_conversation_per_participant_with_unread_marks() {
    let api = Api::start().await;
    let alice = api.user_with("alice", "read write").await;
    let bob = api.user_with("bob", "read write").await;
    let carol = api.user_with("carol", "read write").await;

    let first = api.post_direct(&alice, "@bob @carol a secret", None).await;
    let mine = api.until_listed(&alice, &first).await;
    assert_eq!(mine["unread"], false, "the author has read what they wrote");
    assert_eq!(
        account_ids(&mine),
        sorted(vec![bob.id.clone(), carol.id.clone()])
    );
    assert_eq!(mine["last_status"]["visibility"], "direct");
    let bobs = api.until_listed(&bob, &first).await;
    assert_eq!(bobs["unread"], true);
    assert_eq!(
        account_ids(&bobs),
        sorted(vec![alice.id.clone(), carol.id.clone()])
    );
    assert!(bobs["id"].as_str().unwrap() != mine["id"].as_str().unwrap());

    // A reply in the thread updates the same conversation: read for bob, unread for alice.
    let reply = api
        .post_direct(&bob, "@alice @carol got it", Some(&first))
        .await;
    let bobs_after = api.until_listed(&bob, &reply).await;
    assert_eq!(bobs_after["id"], bobs["id"]);
    assert_eq!(bobs_after["unread"], false);
    let mine_after = api.until_listed(&alice, &reply).await;
    assert_eq!(mine_after["id"], mine["id"]);
    assert_eq!(mine_after["unread"], true);
    assert_eq!(
        api.conversations(&alice, "")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Marking it read.
    let path = format!(
        "/api/v1/conversations/{}/read",
        mine["id"].as_str().unwrap()
    );
    let read = api
        .call("POST", &path, &alice.token, &[])
        .await
        .expect(200)
        .json();
    assert_eq!(read["unread"], false);
    assert_eq!(read["last_status"]["id"], reply.as_str());
    assert_eq!(
        api.conversations(&alice, "").await.json()[0]["unread"],
        false
    );
    // Someone else's conversation is not found.
    api.call("POST", &path, &bob.token, &[]).await.expect(404);

    // A direct status between other people is not in alice's conversations.
    let other = api.post_direct(&carol, "@bob just us", None).await;
    api.until_listed(&bob, &other).await;
    let alices = api.conversations(&alice, "").await.json();
    assert_eq!(alices.as_array().unwrap().len(), 1, "{alices}");

    // Deleting the newest status shows the one before it; deleting the conversation
    // removes it from the list only.
    api.call(
        "DELETE",
        &format!("/api/v1/statuses/{reply}"),
        &bob.token,
        &[],
    )
    .await
    .expect(200);
    let alices = api.conversations(&alice, "").await.json();
    assert_eq!(alices[0]["last_status"]["id"], first.as_str());
    let path = format!("/api/v1/conversations/{}", mine["id"].as_str().unwrap());
    assert_eq!(
        api.call("DELETE", &path, &alice.token, &[])
            .await
            .expect(200)
            .json(),
        serde_json::json!({})
    );
    api.call("DELETE", &path, &alice.token, &[])
        .await
        .expect(404);
    assert_eq!(
        api.conversations(&alice, "").await.json(),
        serde_json::json!([])
    );
    assert_eq!(
        api.conversations(&bob, "")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn conversations_page_by_last_status_and_need_their_scopes() {
    let api = Api::start().await;
    let alice = api.user_with("alice", "read write").await;
    let mut friends = Vec::new();
    let mut statuses = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let friend = api.user_with(name, "read write").await;
        statuses.push(api.post_direct(&alice, &format!("@{name} hi"), None).await);
        friends.push(friend);
    }
    api.until_listed(&alice, statuses.last().unwrap()).await;
    api.until_listed(&alice, &statuses[0]).await;

    let first = api.conversations(&alice, "?limit=2").await;
    let page: Vec<String> = first
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["last_status"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(page, vec![statuses[2].clone(), statuses[1].clone()]);
    let next = first.link("next").expect("a next link");
    assert!(next.contains(&format!("max_id={}", statuses[1])), "{next}");
    let second = api
        .call("GET", &next, &alice.token, &[])
        .await
        .expect(200)
        .json();
    assert_eq!(second.as_array().unwrap().len(), 1);
    assert_eq!(second[0]["last_status"]["id"], statuses[0].as_str());
    assert_eq!(account_ids(&second[0]), vec![friends[0].id.clone()]);
    let newer = api
        .conversations(&alice, &format!("?min_id={}", statuses[0]))
        .await
        .json();
    assert_eq!(newer.as_array().unwrap().len(), 2);
    assert_eq!(newer[0]["last_status"]["id"], statuses[2].as_str());

    // read:statuses lists; marking read and deleting need write:conversations.
    let reader = User {
        id: alice.id.clone(),
        token: issue_token(
            &api.db,
            Some(user_id(&api.db, "alice").await),
            "read:statuses",
        )
        .await,
    };
    api.conversations(&reader, "").await;
    let id = second[0]["id"].as_str().unwrap();
    api.call(
        "POST",
        &format!("/api/v1/conversations/{id}/read"),
        &reader.token,
        &[],
    )
    .await
    .expect(403);
    api.call(
        "DELETE",
        &format!("/api/v1/conversations/{id}"),
        &reader.token,
        &[],
    )
    .await
    .expect(403);
    let writer = issue_token(
        &api.db,
        Some(user_id(&api.db, "alice").await),
        "write:conversations",
    )
    .await;
    api.call("GET", "/api/v1/conversations", &writer, &[])
        .await
        .expect(403);
    api.call(
        "POST",
        &format!("/api/v1/conversations/{id}/read"),
        &writer,
        &[],
    )
    .await
    .expect(200);
}

async fn user_id(db: &str, username: &str) -> i64 {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT u.id FROM users u JOIN accounts a ON a.id = u.account_id WHERE a.username = $1",
    )
    .bind(username)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn each_recipient_gets_a_conversation_event_on_their_direct_stream() {
    let api = Api::start().await;
    let alice = api.user_with("alice", "read write").await;
    let bob = api.user_with("bob", "read write").await;
    let channel = api.keys.channel(&format!("timeline:direct:{}", bob.id));

    // A plain subscriber on the test Redis, as the streamer is.
    let client = redis::Client::open(service_env("FEDI_TEST_REDIS_URL")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let listener = std::thread::spawn(move || {
        let mut conn = client.get_connection().unwrap();
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe(&channel).unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        ready_tx.send(()).unwrap();
        if let Ok(message) = pubsub.get_message() {
            tx.send(message.get_payload::<String>().unwrap()).unwrap();
        }
    });
    ready_rx.recv().unwrap();
    let status = api.post_direct(&alice, "@bob psst", None).await;
    let message = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("a conversation event on bob's direct channel");
    listener.join().unwrap();
    let event: Value = serde_json::from_str(&message).unwrap();
    assert_eq!(event["event"], "conversation", "{event}");
    let payload: Value = serde_json::from_str(event["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["last_status"]["id"], status.as_str());
    assert_eq!(payload["unread"], true);
    assert_eq!(account_ids(&payload), vec![alice.id.clone()]);
    // The same entity the REST API lists.
    assert_eq!(payload, api.conversations(&bob, "").await.json()[0]);
}
