//! Notifications over HTTP against the real server, PostgreSQL and Redis: what creates them
//! (follows, follow requests, favourites, boosts, mentions, subscribed statuses, edits of
//! boosted statuses), what does not (oneself, muted and blocked accounts), what removes
//! them (every undo), the list with its filters and pagination, one notification, dismiss,
//! clear, the unread count, scopes, and the push to the streamer over Redis pub/sub.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

type Api = TestApi;

impl Api {
    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call("GET", path, token, Body::None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, form: &[(&str, &str)]) -> Reply {
        self.call("POST", path, token, Body::Form(form)).await
    }

    async fn user(&self, username: &str) -> User {
        let (account_id, user_id) = create_user(&self.db, username, "unused-password").await;
        User {
            id: account_id.to_string(),
            token: issue_token(&self.db, Some(user_id), "read write follow").await,
        }
    }

    async fn token_for(&self, user: &User, scopes: &str) -> String {
        let mut conn = self.conn().await;
        let (user_id,): (i64,) = sqlx::query_as("SELECT id FROM users WHERE account_id = $1")
            .bind(user.id.parse::<i64>().unwrap())
            .fetch_one(&mut conn)
            .await
            .unwrap();
        issue_token(&self.db, Some(user_id), scopes).await
    }

    async fn status(&self, user: &User, form: &[(&str, &str)]) -> String {
        self.post("/api/v1/statuses", Some(&user.token), form)
            .await
            .expect(200)
            .json()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `who` does `action` (`favourite`, `reblog`, ...) to status `id`.
    async fn act(&self, who: &User, id: &str, action: &str) {
        self.post(
            &format!("/api/v1/statuses/{id}/{action}"),
            Some(&who.token),
            &[],
        )
        .await
        .expect(200);
    }

    /// `who` does `action` (`follow`, `block`, ...) to account `target`.
    async fn relate(&self, who: &User, target: &User, action: &str, form: &[(&str, &str)]) {
        self.post(
            &format!("/api/v1/accounts/{}/{action}", target.id),
            Some(&who.token),
            form,
        )
        .await
        .expect(200);
    }

    async fn notifications(&self, user: &User, query: &str) -> Value {
        self.get(&format!("/api/v1/notifications{query}"), Some(&user.token))
            .await
            .expect(200)
            .json()
    }

    /// (type, actor id, status id) of each notification, newest first.
    async fn summary(&self, user: &User, query: &str) -> Vec<(String, String, Option<String>)> {
        summary(&self.notifications(user, query).await)
    }
}

fn summary(list: &Value) -> Vec<(String, String, Option<String>)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|n| {
            (
                n["type"].as_str().unwrap().to_string(),
                n["account"]["id"].as_str().unwrap().to_string(),
                n.get("status")
                    .map(|s| s["id"].as_str().unwrap().to_string()),
            )
        })
        .collect()
}

fn n(kind: &str, actor: &User, status: Option<&str>) -> (String, String, Option<String>) {
    (kind.to_string(), actor.id.clone(), status.map(String::from))
}

#[tokio::test]
async fn actions_notify_and_their_undoing_removes_the_notification() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;

    api.relate(&bob, &alice, "follow", &[]).await;
    let post = api.status(&alice, &[("status", "hello")]).await;
    api.act(&bob, &post, "favourite").await;
    api.act(&bob, &post, "reblog").await;
    let mention = api.status(&carol, &[("status", "@alice hi there")]).await;
    // Nothing about one's own actions.
    api.act(&alice, &post, "favourite").await;
    api.act(&alice, &post, "reblog").await;
    // Doing it again notifies once.
    api.act(&bob, &post, "favourite").await;
    api.relate(&bob, &alice, "follow", &[]).await;

    let list = api.notifications(&alice, "").await;
    assert_eq!(
        summary(&list),
        vec![
            n("mention", &carol, Some(&mention)),
            n("reblog", &bob, Some(&post)),
            n("favourite", &bob, Some(&post)),
            n("follow", &bob, None),
        ]
    );
    // The entity, as Mastodon's.
    let follow = &list[3];
    assert!(follow.get("status").is_none(), "{follow}");
    let keys: BTreeSet<&str> = follow
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["id", "type", "created_at", "group_key", "account"])
    );
    assert!(follow["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        list[0]["status"]["content"]
            .as_str()
            .unwrap()
            .contains("hi there")
    );
    assert_eq!(
        list[0]["group_key"],
        format!("ungrouped-{}", list[0]["id"].as_str().unwrap())
    );
    assert!(
        list[2]["group_key"]
            .as_str()
            .unwrap()
            .starts_with(&format!("favourite-{post}-"))
    );
    // The reblog notification shows the status that was boosted, as seen by its author.
    assert_eq!(list[1]["status"]["reblogged"], true);
    // Bob got nothing: he acted.
    assert_eq!(api.summary(&bob, "").await, vec![]);

    // Filters.
    assert_eq!(
        api.summary(&alice, "?types[]=mention&types[]=follow").await,
        vec![
            n("mention", &carol, Some(&mention)),
            n("follow", &bob, None)
        ]
    );
    assert_eq!(
        api.summary(&alice, "?exclude_types[]=mention&exclude_types[]=follow")
            .await,
        vec![
            n("reblog", &bob, Some(&post)),
            n("favourite", &bob, Some(&post))
        ]
    );
    assert_eq!(
        api.summary(&alice, &format!("?account_id={}", carol.id))
            .await,
        vec![n("mention", &carol, Some(&mention))]
    );
    assert_eq!(api.summary(&alice, "?types[]=no_such_type").await, vec![]);
    api.get("/api/v1/notifications?account_id=abc", Some(&alice.token))
        .await
        .refused("account_id");

    // Pages, newest first, with Mastodon's links.
    let first = api
        .get("/api/v1/notifications?limit=3", Some(&alice.token))
        .await
        .expect(200);
    assert_eq!(summary(&first.json()).len(), 3);
    let next = first.link("next").expect("a next link");
    assert!(
        next.contains("limit=3") && next.contains("max_id="),
        "{next}"
    );
    let rest = api.get(&next, Some(&alice.token)).await.expect(200).json();
    assert_eq!(summary(&rest), vec![n("follow", &bob, None)]);
    let prev = api
        .get(
            &format!(
                "/api/v1/notifications?min_id={}",
                rest[0]["id"].as_str().unwrap()
            ),
            Some(&alice.token),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(summary(&prev), summary(&first.json()));

    // Undoing each action takes its notification away.
    api.act(&bob, &post, "unfavourite").await;
    api.act(&bob, &post, "unreblog").await;
    api.relate(&bob, &alice, "unfollow", &[]).await;
    api.call(
        "DELETE",
        &format!("/api/v1/statuses/{mention}"),
        Some(&carol.token),
        Body::None,
    )
    .await
    .expect(200);
    assert_eq!(api.summary(&alice, "").await, vec![]);
    let mut conn = api.conn().await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);

    // Doing it again is a new notification.
    api.act(&bob, &post, "favourite").await;
    assert_eq!(
        api.summary(&alice, "").await,
        vec![n("favourite", &bob, Some(&post))]
    );
    // Deleting the status removes what was about it.
    api.call(
        "DELETE",
        &format!("/api/v1/statuses/{post}"),
        Some(&alice.token),
        Body::None,
    )
    .await
    .expect(200);
    assert_eq!(api.summary(&alice, "").await, vec![]);
}

#[tokio::test]
async fn requests_subscriptions_edits_mutes_and_blocks() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let dave = api.user("dave").await;

    // A locked account hears of the request; authorising or rejecting it settles it.
    let mut conn = api.conn().await;
    sqlx::query("UPDATE accounts SET locked = true WHERE id = $1")
        .bind(alice.id.parse::<i64>().unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    api.relate(&bob, &alice, "follow", &[("notify", "true")])
        .await;
    api.relate(&carol, &alice, "follow", &[]).await;
    assert_eq!(
        api.summary(&alice, "").await,
        vec![
            n("follow_request", &carol, None),
            n("follow_request", &bob, None)
        ]
    );
    api.post(
        &format!("/api/v1/follow_requests/{}/authorize", bob.id),
        Some(&alice.token),
        &[],
    )
    .await
    .expect(200);
    api.post(
        &format!("/api/v1/follow_requests/{}/reject", carol.id),
        Some(&alice.token),
        &[],
    )
    .await
    .expect(200);
    assert_eq!(api.summary(&alice, "").await, vec![]);

    // Bob asked to be told of Alice's posts: her own ones, not her replies to others.
    let post = api.status(&alice, &[("status", "news")]).await;
    let other = api.status(&dave, &[("status", "a thread")]).await;
    api.status(&alice, &[("status", "a reply"), ("in_reply_to_id", &other)])
        .await;
    let private = api
        .status(
            &alice,
            &[("status", "for followers"), ("visibility", "private")],
        )
        .await;
    assert_eq!(
        api.summary(&bob, "").await,
        vec![
            n("status", &alice, Some(&private)),
            n("status", &alice, Some(&post))
        ]
    );

    // Those who boosted a status hear of its edits.
    api.act(&dave, &post, "reblog").await;
    api.call(
        "PUT",
        &format!("/api/v1/statuses/{post}"),
        Some(&alice.token),
        Body::Form(&[("status", "news, edited")]),
    )
    .await
    .expect(200);
    assert_eq!(
        api.summary(&dave, "").await,
        vec![n("update", &alice, Some(&post))]
    );

    // Muted (with notifications) and blocked accounts are not heard.
    api.relate(&alice, &carol, "mute", &[]).await;
    api.relate(&alice, &dave, "mute", &[("notifications", "false")])
        .await;
    api.act(&carol, &post, "favourite").await;
    api.act(&dave, &post, "favourite").await;
    api.status(&carol, &[("status", "@alice psst")]).await;
    assert_eq!(
        api.summary(&alice, "").await,
        vec![
            n("favourite", &dave, Some(&post)),
            n("reblog", &dave, Some(&post))
        ]
    );
    // A block hides what the account did before.
    api.relate(&alice, &dave, "block", &[]).await;
    assert_eq!(api.summary(&alice, "").await, vec![]);
    api.status(&dave, &[("status", "@alice still there?")])
        .await;
    api.relate(&alice, &dave, "unblock", &[]).await;
    let shown = api.summary(&alice, "").await;
    assert!(
        shown.iter().all(|(kind, _, _)| kind != "mention"),
        "a mention made while blocked was recorded: {shown:?}"
    );
}

#[tokio::test]
async fn one_notification_dismiss_clear_and_unread_count() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    api.relate(&bob, &alice, "follow", &[]).await;
    api.relate(&carol, &alice, "follow", &[]).await;
    let post = api.status(&alice, &[("status", "hello")]).await;
    api.act(&bob, &post, "favourite").await;
    let list = api.notifications(&alice, "").await;
    let ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);

    let one = api
        .get(
            &format!("/api/v1/notifications/{}", ids[0]),
            Some(&alice.token),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(one, list[0]);
    // Another user's notification, an unknown id, or no id at all: not found.
    for (path, token) in [
        (format!("/api/v1/notifications/{}", ids[0]), &bob.token),
        ("/api/v1/notifications/1".to_string(), &alice.token),
        ("/api/v1/notifications/nope".to_string(), &alice.token),
    ] {
        api.get(&path, Some(token)).await.expect(404);
    }

    let count = |query: &'static str| {
        let api = &api;
        let alice = &alice;
        async move {
            api.get(
                &format!("/api/v1/notifications/unread_count{query}"),
                Some(&alice.token),
            )
            .await
            .expect(200)
            .json()["count"]
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!(count("").await, 3);
    assert_eq!(count("?limit=2").await, 2);
    assert_eq!(count("?types[]=follow").await, 2);
    // Read up to the second newest: one is left.
    api.post(
        "/api/v1/markers",
        Some(&alice.token),
        &[("notifications[last_read_id]", &ids[1])],
    )
    .await
    .expect(200);
    assert_eq!(count("").await, 1);

    // Dismissing: only one's own, once.
    api.post(
        &format!("/api/v1/notifications/{}/dismiss", ids[1]),
        Some(&bob.token),
        &[],
    )
    .await
    .expect(404);
    let reply = api
        .post(
            &format!("/api/v1/notifications/{}/dismiss", ids[1]),
            Some(&alice.token),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(reply.json(), json!({}));
    api.post(
        &format!("/api/v1/notifications/{}/dismiss", ids[1]),
        Some(&alice.token),
        &[],
    )
    .await
    .expect(404);
    assert_eq!(
        api.notifications(&alice, "")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Bob's notifications survive Alice's clearing hers.
    api.relate(&alice, &bob, "follow", &[]).await;
    let reply = api
        .post("/api/v1/notifications/clear", Some(&alice.token), &[])
        .await
        .expect(200);
    assert_eq!(reply.json(), json!({}));
    assert_eq!(api.summary(&alice, "").await, vec![]);
    assert_eq!(api.summary(&bob, "").await, vec![n("follow", &alice, None)]);
}

#[tokio::test]
async fn scopes_are_enforced() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    api.relate(&bob, &alice, "follow", &[]).await;
    let id = api.notifications(&alice, "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let statuses_only = api.token_for(&alice, "read:statuses write:statuses").await;
    let read_only = api.token_for(&alice, "read:notifications").await;
    for path in [
        "/api/v1/notifications".to_string(),
        format!("/api/v1/notifications/{id}"),
        "/api/v1/notifications/unread_count".to_string(),
    ] {
        api.get(&path, Some(&statuses_only)).await.expect(403);
        api.get(&path, None).await.expect(401);
        api.get(&path, Some(&read_only)).await.expect(200);
    }
    for path in [
        format!("/api/v1/notifications/{id}/dismiss"),
        "/api/v1/notifications/clear".into(),
    ] {
        api.post(&path, Some(&read_only), &[]).await.expect(403);
        api.post(&path, None, &[]).await.expect(401);
    }
    // Nothing was dismissed by the refused calls.
    assert_eq!(api.summary(&alice, "").await, vec![n("follow", &bob, None)]);
    let write = api.token_for(&alice, "write:notifications").await;
    api.post(
        &format!("/api/v1/notifications/{id}/dismiss"),
        Some(&write),
        &[],
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn new_notifications_reach_the_streamer() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let channel = fedi_server::redis_keys::Namespace::new("test.example")
        .channel(&format!("timeline:{}:notifications", alice.id));

    // A plain subscriber on the test Redis, as the streamer is.
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
        if let Ok(message) = pubsub.get_message() {
            tx.send(message.get_payload::<String>().unwrap()).unwrap();
        }
    });
    ready_rx.recv().unwrap();
    api.relate(&bob, &alice, "follow", &[]).await;
    let message = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a notification event on the channel");
    listener.join().unwrap();
    let event: Value = serde_json::from_str(&message).unwrap();
    assert_eq!(event["event"], "notification", "{event}");
    let payload: Value = serde_json::from_str(event["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["type"], "follow");
    assert_eq!(payload["account"]["id"], bob.id.as_str());
    // The same notification the REST API lists.
    assert_eq!(payload, api.notifications(&alice, "").await[0]);
}
