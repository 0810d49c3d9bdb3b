//! Content filters (Mastodon's v2 API) over HTTP against the real server, PostgreSQL and
//! Redis: the Filter entity with its keywords and statuses, nested keyword attributes,
//! expiry, validation, ownership and scopes; `Status.filtered` for the viewer; and the
//! `filters_changed` event on the owner's stream.

mod common;

use std::time::Duration;

use common::*;
use reqwest::header;
use serde_json::{Value, json};

struct Api {
    server: Server,
    db: String,
    http: reqwest::Client,
}

struct User {
    id: String,
    token: String,
}

impl Api {
    async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (server, db) = api_on_fresh_database(&[]).await;
        Self {
            server,
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

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.base_url));
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Reply::read(req.send().await.unwrap()).await
    }

    async fn ok(&self, method: &str, path: &str, user: &User, body: Option<Value>) -> Value {
        self.call(method, path, Some(&user.token), body)
            .await
            .expect(200)
            .json()
    }

    async fn post_status(&self, user: &User, text: &str, visibility: &str) -> String {
        let s = self
            .ok(
                "POST",
                "/api/v1/statuses",
                user,
                Some(json!({"status": text, "visibility": visibility})),
            )
            .await;
        s["id"].as_str().unwrap().to_string()
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn filters_keywords_and_statuses_are_managed_by_their_owner() {
    let api = Api::start().await;
    let alice = api.user_with("alice", "read write").await;
    let bob = api.user_with("bob", "read write").await;

    let created = api
        .ok(
            "POST",
            "/api/v2/filters",
            &alice,
            Some(json!({
                "title": " Pets ",
                "context": ["home", "public", "home"],
                "filter_action": "hide",
                "expires_in": 3600,
                "keywords_attributes": [
                    {"keyword": "cat", "whole_word": true},
                    {"keyword": "dog", "whole_word": "false"}
                ]
            })),
        )
        .await;
    let fid = id(&created);
    assert_eq!(created["title"], "Pets");
    assert_eq!(created["context"], json!(["home", "public"]));
    assert_eq!(created["filter_action"], "hide");
    assert_eq!(created["statuses"], json!([]));
    let expires = created["expires_at"].as_str().expect("an expiry");
    assert!(expires.ends_with('Z'), "{expires}");
    let kw = created["keywords"].as_array().unwrap();
    assert_eq!(kw.len(), 2);
    assert_eq!(
        (kw[0]["keyword"].clone(), kw[0]["whole_word"].clone()),
        (json!("cat"), json!(true))
    );
    assert_eq!(
        (kw[1]["keyword"].clone(), kw[1]["whole_word"].clone()),
        (json!("dog"), json!(false))
    );
    let (cat, dog) = (id(&kw[0]), id(&kw[1]));
    assert_eq!(
        api.ok("GET", "/api/v2/filters", &alice, None).await,
        json!([created.clone()])
    );
    assert_eq!(
        api.ok("GET", &format!("/api/v2/filters/{fid}"), &alice, None)
            .await,
        created
    );

    // Refusals.
    for (body, field) in [
        (json!({"context": ["home"]}), "title"),
        (json!({"title": "x"}), "context"),
        (json!({"title": "x", "context": ["nope"]}), "context"),
        (
            json!({"title": "x", "context": ["home"], "filter_action": "nuke"}),
            "filter_action",
        ),
        (
            json!({"title": "x", "context": ["home"], "expires_in": "soon"}),
            "expires_in",
        ),
        (
            json!({"title": "x", "context": ["home"], "keywords_attributes": [{"keyword": " "}]}),
            "keyword",
        ),
    ] {
        let r = api
            .call(
                "POST",
                "/api/v2/filters",
                Some(&alice.token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert!(r.text().contains(field), "{body}: {}", r.text());
    }
    assert_eq!(
        api.ok("GET", "/api/v2/filters", &alice, None)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Update with nested keyword changes; an empty expires_in means never.
    let updated = api
        .ok(
            "PUT",
            &format!("/api/v2/filters/{fid}"),
            &alice,
            Some(json!({
                "title": "Animals",
                "expires_in": "",
                "keywords_attributes": [
                    {"id": cat, "_destroy": true},
                    {"id": dog, "whole_word": true},
                    {"keyword": "bird"}
                ]
            })),
        )
        .await;
    assert_eq!(updated["title"], "Animals");
    assert_eq!(updated["expires_at"], Value::Null);
    assert_eq!(updated["filter_action"], "hide", "unchanged");
    assert_eq!(updated["context"], json!(["home", "public"]), "unchanged");
    let words: Vec<(Value, Value)> = updated["keywords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["keyword"].clone(), k["whole_word"].clone()))
        .collect();
    assert_eq!(
        words,
        vec![(json!("dog"), json!(true)), (json!("bird"), json!(true))]
    );

    // The keywords sub-resource.
    let fish = api
        .ok(
            "POST",
            &format!("/api/v2/filters/{fid}/keywords"),
            &alice,
            Some(json!({"keyword": "fish", "whole_word": false})),
        )
        .await;
    assert_eq!(
        (fish["keyword"].clone(), fish["whole_word"].clone()),
        (json!("fish"), json!(false))
    );
    let kpath = format!("/api/v2/filters/keywords/{}", id(&fish));
    assert_eq!(api.ok("GET", &kpath, &alice, None).await, fish);
    let renamed = api
        .ok("PUT", &kpath, &alice, Some(json!({"keyword": "fishes"})))
        .await;
    assert_eq!(
        (renamed["keyword"].clone(), renamed["whole_word"].clone()),
        (json!("fishes"), json!(false))
    );
    assert_eq!(
        api.ok(
            "GET",
            &format!("/api/v2/filters/{fid}/keywords"),
            &alice,
            None
        )
        .await
        .as_array()
        .unwrap()
        .len(),
        3
    );
    api.call("GET", &kpath, Some(&bob.token), None)
        .await
        .expect(404);
    assert_eq!(api.ok("DELETE", &kpath, &alice, None).await, json!({}));
    api.call("GET", &kpath, Some(&alice.token), None)
        .await
        .expect(404);

    // The statuses sub-resource: only statuses the owner can see.
    let public = api.post_status(&bob, "hello", "public").await;
    let secret = api.post_status(&bob, "nobody sees this", "direct").await;
    let fs = api
        .ok(
            "POST",
            &format!("/api/v2/filters/{fid}/statuses"),
            &alice,
            Some(json!({"status_id": public})),
        )
        .await;
    assert_eq!(fs["status_id"], public.as_str());
    let spath = format!("/api/v2/filters/statuses/{}", id(&fs));
    assert_eq!(api.ok("GET", &spath, &alice, None).await, fs);
    assert_eq!(
        api.ok(
            "GET",
            &format!("/api/v2/filters/{fid}/statuses"),
            &alice,
            None
        )
        .await,
        json!([fs.clone()])
    );
    api.call(
        "POST",
        &format!("/api/v2/filters/{fid}/statuses"),
        Some(&alice.token),
        Some(json!({"status_id": secret})),
    )
    .await
    .expect(404);
    api.call("GET", &spath, Some(&bob.token), None)
        .await
        .expect(404);
    assert_eq!(api.ok("DELETE", &spath, &alice, None).await, json!({}));
    api.call("GET", &spath, Some(&alice.token), None)
        .await
        .expect(404);

    // Someone else's filter does not exist for bob.
    let fpath = format!("/api/v2/filters/{fid}");
    api.call("GET", &fpath, Some(&bob.token), None)
        .await
        .expect(404);
    api.call(
        "PUT",
        &fpath,
        Some(&bob.token),
        Some(json!({"title": "mine"})),
    )
    .await
    .expect(404);
    api.call("DELETE", &fpath, Some(&bob.token), None)
        .await
        .expect(404);
    assert_eq!(
        api.ok("GET", "/api/v2/filters", &bob, None).await,
        json!([])
    );

    // Scopes: read:filters reads, write:filters writes.
    let reader = api.user_with("reader", "read:filters").await;
    api.call("GET", "/api/v2/filters", Some(&reader.token), None)
        .await
        .expect(200);
    api.call(
        "POST",
        "/api/v2/filters",
        Some(&reader.token),
        Some(json!({"title": "t", "context": ["home"]})),
    )
    .await
    .expect(403);
    let writer = api.user_with("writer", "write:filters").await;
    api.call("GET", "/api/v2/filters", Some(&writer.token), None)
        .await
        .expect(403);
    api.call(
        "POST",
        "/api/v2/filters",
        Some(&writer.token),
        Some(json!({"title": "t", "context": ["home"]})),
    )
    .await
    .expect(200);

    assert_eq!(api.ok("DELETE", &fpath, &alice, None).await, json!({}));
    api.call("GET", &fpath, Some(&alice.token), None)
        .await
        .expect(404);
    assert_eq!(
        api.ok("GET", "/api/v2/filters", &alice, None).await,
        json!([])
    );
}

#[tokio::test]
async fn statuses_carry_the_viewers_filter_results() {
    let api = Api::start().await;
    let alice = api.user_with("alice", "read write").await;
    let bob = api.user_with("bob", "read write").await;
    let carol = api.user_with("carol", "read write").await;
    let filter = api
        .ok(
            "POST",
            "/api/v2/filters",
            &alice,
            Some(json!({"title": "No cats", "context": ["home"],
                        "keywords_attributes": [{"keyword": "Cat", "whole_word": true}]})),
        )
        .await;
    let cat = api
        .post_status(&bob, "I love my CAT &amp; more", "public")
        .await;
    let word = api.post_status(&bob, "concatenate", "public").await;
    let other = api.post_status(&bob, "dogs", "public").await;

    let seen = |s: &str, u: Option<&User>| {
        let path = format!("/api/v1/statuses/{s}");
        let token = u.map(|u| u.token.clone());
        let api = &api;
        async move {
            api.call("GET", &path, token.as_deref(), None)
                .await
                .expect(200)
                .json()["filtered"]
                .clone()
        }
    };
    let results = seen(&cat, Some(&alice)).await;
    assert_eq!(results.as_array().unwrap().len(), 1, "{results}");
    assert_eq!(results[0]["filter"], filter);
    assert_eq!(results[0]["keyword_matches"], json!(["Cat"]));
    assert_eq!(results[0]["status_matches"], Value::Null);
    assert_eq!(
        seen(&word, Some(&alice)).await,
        json!([]),
        "whole words only"
    );
    assert_eq!(
        seen(&cat, Some(&bob)).await,
        json!([]),
        "bob has no filters"
    );
    assert_eq!(seen(&cat, None).await, json!([]));

    // By status, and on a reblog as on what it shares; in timelines too.
    let fs = api
        .ok(
            "POST",
            &format!("/api/v2/filters/{}/statuses", id(&filter)),
            &alice,
            Some(json!({"status_id": other})),
        )
        .await;
    let results = seen(&other, Some(&alice)).await;
    assert_eq!(results[0]["status_matches"], json!([id(&fs)]));
    assert_eq!(results[0]["keyword_matches"], Value::Null);
    let boost = api
        .ok(
            "POST",
            &format!("/api/v1/statuses/{cat}/reblog"),
            &carol,
            None,
        )
        .await;
    let results = seen(&id(&boost), Some(&alice)).await;
    assert_eq!(results[0]["keyword_matches"], json!(["Cat"]), "{results}");
    let public = api
        .ok("GET", "/api/v1/timelines/public", &alice, None)
        .await;
    let filtered: Vec<String> = public
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["filtered"].as_array().unwrap().is_empty())
        .map(id)
        .collect();
    assert_eq!(filtered, vec![other.clone(), cat.clone()]);

    // An expired filter matches nothing.
    api.ok(
        "PUT",
        &format!("/api/v2/filters/{}", id(&filter)),
        &alice,
        Some(json!({"expires_in": 1})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(seen(&cat, Some(&alice)).await, json!([]));
}

#[tokio::test]
async fn changes_send_filters_changed_on_the_owners_stream() {
    let api = Api::start().await;
    let alice = api.user_with("alice", "read write").await;
    let channel = fedi_server::redis_keys::Namespace::new("test.example")
        .channel(&format!("timeline:{}", alice.id));
    let client = redis::Client::open(service_env("FEDI_TEST_REDIS_URL")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let listener = std::thread::spawn(move || {
        let mut conn = client.get_connection().unwrap();
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe(&channel).unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        ready_tx.send(()).unwrap();
        for _ in 0..2 {
            if let Ok(message) = pubsub.get_message() {
                tx.send(message.get_payload::<String>().unwrap()).unwrap();
            }
        }
    });
    ready_rx.recv().unwrap();
    let f = api
        .ok(
            "POST",
            "/api/v2/filters",
            &alice,
            Some(json!({"title": "t", "context": ["thread"]})),
        )
        .await;
    api.ok(
        "DELETE",
        &format!("/api/v2/filters/{}", id(&f)),
        &alice,
        None,
    )
    .await;
    for _ in 0..2 {
        let message = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a filters_changed event");
        let event: Value = serde_json::from_str(&message).unwrap();
        assert_eq!(event, json!({"event": "filters_changed", "payload": ""}));
    }
    listener.join().unwrap();
}

#[tokio::test]
async fn hide_filters_drop_statuses_from_the_timelines_of_their_contexts() {
    let api = Api::start().await;
    let alice = api.user_with("alice", "read write follow").await;
    let bob = api.user_with("bob", "read write").await;
    api.ok(
        "POST",
        &format!("/api/v1/accounts/{}/follow", bob.id),
        &alice,
        None,
    )
    .await;
    let spoiler = api
        .post_status(&bob, "the ending of the film", "public")
        .await;
    let plain = api.post_status(&bob, "nice weather", "public").await;
    let ids = |v: Value| -> Vec<String> { v.as_array().unwrap().iter().map(id).collect() };
    api.ok(
        "POST",
        "/api/v2/filters",
        &alice,
        Some(
            json!({"title": "Spoilers", "context": ["public"], "filter_action": "hide",
                    "keywords_attributes": [{"keyword": "ending"}]}),
        ),
    )
    .await;
    let public = api
        .ok("GET", "/api/v1/timelines/public", &alice, None)
        .await;
    assert_eq!(ids(public), vec![plain.clone()], "hidden in public");
    let public = api.ok("GET", "/api/v1/timelines/public", &bob, None).await;
    assert_eq!(
        ids(public),
        vec![plain.clone(), spoiler.clone()],
        "not for bob"
    );
    // Home is not among the filter's contexts: there it is only marked.
    let home = api.ok("GET", "/api/v1/timelines/home", &alice, None).await;
    assert_eq!(ids(home.clone()), vec![plain.clone(), spoiler.clone()]);
    assert_eq!(home[1]["filtered"][0]["filter"]["filter_action"], "hide");
    // A warn filter in home marks without hiding; a hide filter in home hides.
    api.ok(
        "POST",
        "/api/v2/filters",
        &alice,
        Some(
            json!({"title": "Weather", "context": ["home"], "filter_action": "hide",
                    "keywords_attributes": [{"keyword": "weather"}]}),
        ),
    )
    .await;
    let home = api.ok("GET", "/api/v1/timelines/home", &alice, None).await;
    assert_eq!(ids(home), vec![spoiler.clone()]);
}

#[tokio::test]
async fn v1_filters_show_each_keyword_of_the_v2_filters() {
    let api = Api::start().await;
    let alice = api.user_with("alice", "read write").await;
    let bob = api.user_with("bob", "read write").await;
    let f = api
        .ok(
            "POST",
            "/api/v2/filters",
            &alice,
            Some(
                json!({"title": "t", "context": ["home", "thread"], "filter_action": "hide",
                        "keywords_attributes": [{"keyword": "one"},
                                                {"keyword": "two", "whole_word": false}]}),
            ),
        )
        .await;
    let kw = f["keywords"].as_array().unwrap();
    let v1 = api.ok("GET", "/api/v1/filters", &alice, None).await;
    assert_eq!(
        v1,
        json!([
            {"id": id(&kw[0]), "phrase": "one", "context": ["home", "thread"],
             "whole_word": true, "expires_at": null, "irreversible": true},
            {"id": id(&kw[1]), "phrase": "two", "context": ["home", "thread"],
             "whole_word": false, "expires_at": null, "irreversible": true}
        ])
    );
    let one = api
        .ok(
            "GET",
            &format!("/api/v1/filters/{}", id(&kw[1])),
            &alice,
            None,
        )
        .await;
    assert_eq!(one, v1[1]);
    api.call(
        "GET",
        &format!("/api/v1/filters/{}", id(&kw[1])),
        Some(&bob.token),
        None,
    )
    .await
    .expect(404);
    assert_eq!(
        api.ok("GET", "/api/v1/filters", &bob, None).await,
        json!([])
    );
}
