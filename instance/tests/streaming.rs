//! The streamer against real PostgreSQL and Redis (standalone, the 6-node cluster, and a
//! Redis of its own that the test restarts): events published through `events::publish`
//! reach WebSocket and SSE clients in Mastodon's shapes, tokens come from any of the three
//! places clients put them, scopes, lists and per-viewer filtering hold, a revoked token's
//! connections close, and streams survive a Redis restart.

mod common;
#[path = "streaming/support.rs"]
mod support;

use std::time::Duration;

use common::*;
use fedi_server::events::{Event, channel};
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(10);
/// Long enough to be sure a withheld message is not merely late.
const QUIET: Duration = Duration::from_millis(700);

async fn sql(db: &str, statement: &'static str, binds: &[i64]) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    let mut q = sqlx::query(statement);
    for b in binds {
        q = q.bind(*b);
    }
    q.execute(&mut conn).await.unwrap();
}

/// Revokes every token of `user_id` in SQL, as `admin accounts reset-password` does: no
/// kill event is published.
async fn revoke_all(db: &str, user_id: i64) {
    sql(
        db,
        "UPDATE oauth_access_tokens SET revoked_at = now() WHERE user_id = $1",
        &[user_id],
    )
    .await;
}

/// A user with a token of `scopes`: `(account id, token)`.
async fn user(db: &str, name: &str, scopes: &str) -> (i64, String) {
    let (account, user) = create_user(db, name, "correct horse battery").await;
    (account, issue_token(db, Some(user), scopes).await)
}

fn payload(frame: &Value) -> Value {
    serde_json::from_str(frame["payload"].as_str().expect("payload is a string")).unwrap()
}

#[tokio::test]
async fn websocket_and_sse_clients_receive_events_in_mastodons_shapes() {
    let db = migrated_database().await;
    let (redis, env) = redis_env(false);
    let streamer = start_streamer(&db, &redis, &env).await;
    let state = app_state(&db, &redis, false);
    let (alice, token) = user(&db, "alice", "read").await;

    let health = reqwest::get(format!("{}/api/v1/streaming/health", streamer.base_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "OK");

    let mut ws = Ws::connect(&streamer.base_url, "stream=user", Auth::Header(&token))
        .await
        .unwrap();
    let mut sse = Sse::connect(&streamer.base_url, "/api/v1/streaming/user", Some(&token))
        .await
        .unwrap();

    let update = Event::update(&status(101, 999, "bob", Some("en")));
    let home = channel::user(alice);
    until_subscribed(&mut ws, &state, &home, WAIT).await;
    until_subscribed(&mut sse, &state, &home, WAIT).await;
    // Publishers may skip channels nobody listens to: the streamer marks this one.
    let marked = state.redis.keys().key(&channel::subscribed_key(&home));
    eventually(WAIT, "the subscribed: key", || async {
        state.redis.exists(&marked).await.unwrap().then_some(())
    })
    .await;
    publish(&state, &home, &update).await;
    let frame = ws.next(WAIT).await.unwrap();
    assert_eq!(frame["stream"], json!(["user"]));
    assert_eq!(frame["event"], "update");
    assert_eq!(payload(&frame)["id"], "101");
    let (event, data) = sse.next(WAIT).await.unwrap();
    assert_eq!(event, "update");
    assert_eq!(serde_json::from_str::<Value>(&data).unwrap()["id"], "101");

    // Both subscriptions are live now: one publish reaches both, in order.
    publish(&state, &home, &Event::delete(101)).await;
    publish(
        &state,
        &channel::notifications(alice),
        &Event::notification(&notification(7, 999, "bob")),
    )
    .await;
    let delete = ws.next(WAIT).await.unwrap();
    assert_eq!(
        (delete["event"].as_str(), delete["payload"].as_str()),
        (Some("delete"), Some("101"))
    );
    let note = ws.next(WAIT).await.unwrap();
    assert_eq!(note["event"], "notification");
    assert_eq!(note["stream"], json!(["user"]));
    assert_eq!(payload(&note)["type"], "mention");
    assert_eq!(
        sse.next(WAIT).await.unwrap(),
        ("delete".into(), "101".into())
    );
    assert_eq!(sse.next(WAIT).await.unwrap().0, "notification");

    // filters_changed carries no payload at all.
    publish(&state, &home, &Event::filters_changed()).await;
    let changed = ws.next(WAIT).await.unwrap();
    assert_eq!(
        changed,
        json!({"stream": ["user"], "event": "filters_changed"})
    );

    // A second stream on the same socket, unsubscribed again.
    ws.subscribe("hashtag", json!({"tag": "Rust"})).await;
    let tagged = Event::update(&status(102, 999, "bob", None));
    let tag_channel = channel::hashtag("rust", false);
    let frame = until_subscribed(&mut ws, &state, &tag_channel, WAIT).await;
    assert_eq!(frame["stream"], json!(["hashtag", "Rust"]));
    publish(&state, &tag_channel, &tagged).await;
    assert_eq!(payload(&ws.next(WAIT).await.unwrap())["id"], "102");
    ws.send(json!({"type": "unsubscribe", "stream": "hashtag", "tag": "Rust"}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(&state, &tag_channel, &tagged).await;
    publish(&state, &home, &Event::delete(5)).await;
    assert_eq!(
        ws.next(WAIT).await.unwrap()["payload"],
        "5",
        "nothing from the tag any more"
    );

    let metrics = reqwest::get(format!("{}/metrics", streamer.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"fedi_streaming_connections{type="websocket"} 1"#)
            && metrics.contains(r#"fedi_streaming_connections{type="eventsource"} 1"#),
        "{metrics}"
    );
    let ready = reqwest::get(format!("{}/readyz", streamer.base_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn the_token_comes_from_the_header_the_query_or_the_protocol_which_is_echoed() {
    let db = migrated_database().await;
    let (redis, env) = redis_env(false);
    let streamer = start_streamer(&db, &redis, &env).await;
    let state = app_state(&db, &redis, false);
    let (alice, token) = user(&db, "alice", "read").await;
    let home = channel::user(alice);

    for auth in [
        Auth::Header(&token),
        Auth::Query(&token),
        Auth::Protocol(&token),
    ] {
        let by_protocol = matches!(auth, Auth::Protocol(_));
        let mut ws = Ws::connect(&streamer.base_url, "stream=user", auth)
            .await
            .unwrap();
        // Chrome drops a connection whose offered protocol is not selected.
        assert_eq!(
            ws.protocol.as_deref(),
            by_protocol.then_some(token.as_str())
        );
        let frame = until_subscribed(&mut ws, &state, &home, WAIT).await;
        assert_eq!(frame["stream"], json!(["user"]));
    }
    // SSE with the query parameter.
    let mut sse = Sse::connect(
        &streamer.base_url,
        &format!("/api/v1/streaming/user?access_token={token}"),
        None,
    )
    .await
    .unwrap();
    until_subscribed(&mut sse, &state, &home, WAIT).await;
    publish(&state, &home, &Event::delete(2)).await;
    assert_eq!(sse.next(WAIT).await.unwrap(), ("delete".into(), "2".into()));

    assert_eq!(
        Ws::connect(&streamer.base_url, "stream=user", Auth::None)
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        Ws::connect(
            &streamer.base_url,
            "stream=user",
            Auth::Header("not-a-token")
        )
        .await
        .err(),
        Some(401)
    );
    let (status, body) = Sse::connect(&streamer.base_url, "/api/v1/streaming/public", None)
        .await
        .err()
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"error":"Missing access token"}"#)
    );
    let (status, body) = Sse::connect(&streamer.base_url, "/api/v1/streaming/public", Some("nope"))
        .await
        .err()
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"error":"Invalid access token"}"#)
    );
    // An application's own token is not a user.
    let app_token = issue_token(&db, None, "read").await;
    assert_eq!(
        Ws::connect(&streamer.base_url, "", Auth::Header(&app_token))
            .await
            .err(),
        Some(401)
    );
}

#[tokio::test]
async fn scopes_and_lists_are_checked_as_on_mastodon() {
    let db = migrated_database().await;
    let (redis, env) = redis_env(false);
    let streamer = start_streamer(&db, &redis, &env).await;
    let state = app_state(&db, &redis, false);
    let (alice, statuses_only) = user(&db, "alice", "read:statuses").await;
    let (bob, _) = user(&db, "bob", "read").await;
    let write_only = {
        let (_, user) = create_user(&db, "carol", "correct horse battery").await;
        issue_token(&db, Some(user), "write").await
    };
    sql(
        &db,
        "INSERT INTO lists (id, account_id, title) VALUES (1, $1, 'mine'), (2, $2, 'bobs')",
        &[alice, bob],
    )
    .await;

    let mut ws = Ws::connect(&streamer.base_url, "", Auth::Header(&statuses_only))
        .await
        .unwrap();
    ws.subscribe("user:notification", json!({})).await;
    assert_eq!(
        ws.next(WAIT).await.unwrap(),
        json!({"error": "Access token does not cover required scopes", "status": 401})
    );
    ws.subscribe("list", json!({"list": "2"})).await;
    assert_eq!(
        ws.next(WAIT).await.unwrap(),
        json!({"error": "Not authorized to stream this list", "status": 404})
    );
    ws.subscribe("hashtag", json!({})).await;
    assert_eq!(ws.next(WAIT).await.unwrap()["status"], 400);
    ws.subscribe("nonsense", json!({})).await;
    assert_eq!(
        ws.next(WAIT).await.unwrap(),
        json!({"error": "Unknown stream type", "status": 400})
    );

    // Its own list, by number as some clients send it.
    ws.subscribe("list", json!({"list": 1})).await;
    let frame = until_subscribed(&mut ws, &state, &channel::list(1), WAIT).await;
    assert_eq!(frame["stream"], json!(["list", "1"]));

    // read:statuses opens the user stream, without notifications.
    ws.subscribe("user", json!({})).await;
    let home = channel::user(alice);
    until_subscribed(&mut ws, &state, &home, WAIT).await;
    publish(
        &state,
        &channel::notifications(alice),
        &Event::notification(&notification(1, bob, "bob")),
    )
    .await;
    publish(&state, &home, &Event::delete(11)).await;
    assert_eq!(
        ws.next(WAIT).await.unwrap()["payload"],
        "11",
        "no notification first"
    );

    // Public streams need a token but no scope; the others refuse a write-only token.
    assert!(
        Sse::connect(
            &streamer.base_url,
            "/api/v1/streaming/public/local?only_media=true",
            Some(&write_only)
        )
        .await
        .is_ok()
    );
    let refused = |path: &'static str, token: String| {
        let base = streamer.base_url.clone();
        async move { Sse::connect(&base, path, Some(&token)).await.err().unwrap() }
    };
    assert_eq!(
        refused("/api/v1/streaming/user", write_only.clone())
            .await
            .0,
        401
    );
    assert_eq!(
        refused("/api/v1/streaming/list?list=2", statuses_only.clone())
            .await
            .0,
        404
    );
    assert_eq!(
        refused("/api/v1/streaming/hashtag", statuses_only.clone())
            .await
            .0,
        400
    );
    assert_eq!(
        refused("/api/v1/streaming/bogus", statuses_only.clone()).await,
        (400, r#"{"error":"Unknown channel requested"}"#.to_string())
    );
}

#[tokio::test]
async fn blocks_and_mutes_filter_before_sending_but_never_the_authors_own() {
    let db = migrated_database().await;
    let (redis, env) = redis_env(false);
    let streamer = start_streamer(&db, &redis, &env).await;
    let state = app_state(&db, &redis, false);
    let (viewer, token) = user(&db, "viewer", "read").await;
    let (muted, muted_token) = user(&db, "muted", "read").await;
    let (quiet, _) = user(&db, "quiet", "read").await;
    let (blocker, _) = user(&db, "blocker", "read").await;
    let (blocked, _) = user(&db, "blocked", "read").await;
    let (friend, _) = user(&db, "friend", "read").await;
    // `quiet` is muted without hiding notifications; `blocker` blocks the viewer.
    sql(
        &db,
        "INSERT INTO mutes (account_id, target_account_id) VALUES ($1, $2)",
        &[viewer, muted],
    )
    .await;
    sql(&db, "INSERT INTO mutes (account_id, target_account_id, hide_notifications) VALUES ($1, $2, false)", &[viewer, quiet]).await;
    sql(
        &db,
        "INSERT INTO blocks (account_id, target_account_id) VALUES ($1, $2), ($3, $4)",
        &[blocker, viewer, viewer, blocked],
    )
    .await;

    // A public stream of this test's own (tests elsewhere post to `timeline:public`).
    let tag = format!("filtered{}", std::process::id());
    let query = format!("stream=hashtag&tag={tag}");
    let public = channel::hashtag(&tag, false);
    let mut ws = Ws::connect(&streamer.base_url, &query, Auth::Header(&token))
        .await
        .unwrap();
    let mut author = Ws::connect(&streamer.base_url, &query, Auth::Header(&muted_token))
        .await
        .unwrap();
    let sentinel = |id| Event::update(&status(id, friend, "friend", None));
    until_subscribed(&mut ws, &state, &public, WAIT).await;
    until_subscribed(&mut author, &state, &public, WAIT).await;

    let mut by_muted = status(2, muted, "muted", None);
    publish(&state, &public, &Event::update(&by_muted)).await;
    let mut mentions_blocked = status(3, friend, "friend", None);
    mentions_blocked["mentions"] = json!([{"id": blocked.to_string()}]);
    publish(&state, &public, &Event::update(&mentions_blocked)).await;
    publish(
        &state,
        &public,
        &Event::update(&status(4, blocker, "blocker", None)),
    )
    .await;
    let mut boost_of_muted = status(5, friend, "friend", None);
    boost_of_muted["reblog"] = status(6, muted, "muted", None);
    publish(&state, &public, &Event::status_update(&boost_of_muted)).await;
    publish(&state, &public, &sentinel(7)).await;
    let first = ws.next(WAIT).await.unwrap();
    assert_eq!(
        payload(&first)["id"],
        "7",
        "muted, blocked and blocking authors withheld"
    );
    assert!(ws.next(QUIET).await.is_none());
    // The muted author's own client gets their status: the author is never filtered.
    by_muted["id"] = json!("2");
    let own = author.next(WAIT).await.unwrap();
    assert_eq!(payload(&own)["id"], "2");

    // Notifications: a mute hides them unless it was made without hide_notifications.
    let mut notes = Ws::connect(
        &streamer.base_url,
        "stream=user:notification",
        Auth::Header(&token),
    )
    .await
    .unwrap();
    let notifications = channel::notifications(viewer);
    until_subscribed(&mut notes, &state, &notifications, WAIT).await;
    publish(
        &state,
        &notifications,
        &Event::notification(&notification(2, muted, "muted")),
    )
    .await;
    publish(
        &state,
        &notifications,
        &Event::notification(&notification(3, quiet, "quiet")),
    )
    .await;
    publish(
        &state,
        &notifications,
        &Event::notification(&notification(4, blocked, "blocked")),
    )
    .await;
    publish(
        &state,
        &notifications,
        &Event::notification(&notification(5, friend, "friend")),
    )
    .await;
    let got: Vec<String> = [
        notes.next(WAIT).await.unwrap(),
        notes.next(WAIT).await.unwrap(),
    ]
    .iter()
    .map(|f| payload(f)["id"].as_str().unwrap().to_string())
    .collect();
    assert_eq!(got, ["3", "5"]);
    assert!(notes.next(QUIET).await.is_none());
    let metrics = reqwest::get(format!("{}/metrics", streamer.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("fedi_streaming_messages_filtered_total 6"),
        "{metrics}"
    );
}

/// An application whose secret the test knows, with a user token of its own.
async fn app_and_token(db: &str, user: i64) -> (String, String, String) {
    use fedi_server::auth::credentials::{digest, new_secret};
    let (client_id, secret, token) = (new_secret(), new_secret(), new_secret());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    let (app,): (i64,) = sqlx::query_as(
        "INSERT INTO oauth_applications (name, redirect_uris, scopes, client_id, client_secret_hash) \
         VALUES ('app', ARRAY['urn:ietf:wg:oauth:2.0:oob'], 'read', $1, $2) RETURNING id",
    )
    .bind(&client_id)
    .bind(digest(&secret))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO oauth_access_tokens (token_hash, application_id, user_id, scopes) \
         VALUES ($1, $2, $3, 'read')",
    )
    .bind(digest(&token))
    .bind(app)
    .bind(user)
    .execute(&mut conn)
    .await
    .unwrap();
    (client_id, secret, token)
}

#[tokio::test]
async fn a_revoked_tokens_connections_close() {
    let db = migrated_database().await;
    let (redis, env) = redis_env(false);
    let streamer = start_streamer(&db, &redis, &env).await;
    let api = start_api(&db, &redis).await;
    let state = app_state(&db, &redis, false);
    let (alice, user_id) = create_user(&db, "alice", "correct horse battery").await;
    let (client_id, secret, token) = app_and_token(&db, user_id).await;
    let other = issue_token(&db, Some(user_id), "read").await;
    let home = channel::user(alice);

    let mut ws = Ws::connect(&streamer.base_url, "stream=user", Auth::Header(&token))
        .await
        .unwrap();
    let mut sse = Sse::connect(&streamer.base_url, "/api/v1/streaming/user", Some(&token))
        .await
        .unwrap();
    let mut survivor = Ws::connect(&streamer.base_url, "stream=user", Auth::Header(&other))
        .await
        .unwrap();
    until_subscribed(&mut ws, &state, &home, WAIT).await;
    until_subscribed(&mut sse, &state, &home, WAIT).await;
    until_subscribed(&mut survivor, &state, &home, WAIT).await;

    // POST /oauth/revoke publishes `kill`: closed at once, long before the periodic check.
    let revoked = reqwest::Client::new()
        .post(format!("{}/oauth/revoke", api.base_url))
        .json(&json!({"client_id": client_id, "client_secret": secret, "token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let fast = Duration::from_secs(5);
    assert!(ws.closed(fast).await, "the WebSocket stays open");
    assert!(sse.ended(fast).await, "the event stream goes on");
    assert!(
        !survivor.closed(QUIET).await,
        "another token's connection closed too"
    );
    assert_eq!(
        Ws::connect(&streamer.base_url, "stream=user", Auth::Header(&token))
            .await
            .err(),
        Some(401)
    );

    // Revoked without a message (as `admin accounts reset-password` does): PostgreSQL's
    // announcement makes the streamer re-validate at once, not at its 15-s check.
    revoke_all(&db, user_id).await;
    assert!(
        survivor.closed(fast).await,
        "still open {fast:?} after the revocation was announced"
    );
}

#[tokio::test]
async fn without_announcements_the_periodic_check_closes_revoked_tokens() {
    let db = migrated_database().await;
    let (redis, mut env) = redis_env(false);
    // No cache and no listener: only the 15-s re-validation is left.
    env.push(("FEDI_TOKEN_CACHE_SECONDS", "0"));
    let streamer = start_streamer(&db, &redis, &env).await;
    let state = app_state(&db, &redis, false);
    let (alice, user_id) = create_user(&db, "alice", "correct horse battery").await;
    let token = issue_token(&db, Some(user_id), "read").await;
    let mut ws = Ws::connect(&streamer.base_url, "stream=user", Auth::Header(&token))
        .await
        .unwrap();
    until_subscribed(&mut ws, &state, &channel::user(alice), WAIT).await;
    revoke_all(&db, user_id).await;
    assert!(
        ws.closed(Duration::from_secs(25)).await,
        "still open after re-validation"
    );
}

#[tokio::test]
async fn two_streamers_on_different_ports_both_deliver() {
    let db = migrated_database().await;
    let (redis, env) = redis_env(false);
    let one = start_streamer(&db, &redis, &env).await;
    let two = start_streamer(&db, &redis, &env).await;
    assert_ne!(one.base_url, two.base_url);
    let state = app_state(&db, &redis, false);
    let (alice, token) = user(&db, "alice", "read").await;
    let home = channel::user(alice);
    let mut a = Ws::connect(&one.base_url, "stream=user", Auth::Header(&token))
        .await
        .unwrap();
    let mut b = Sse::connect(&two.base_url, "/api/v1/streaming/user", Some(&token))
        .await
        .unwrap();
    until_subscribed(&mut a, &state, &home, WAIT).await;
    until_subscribed(&mut b, &state, &home, WAIT).await;
    publish(
        &state,
        &home,
        &Event::update(&status(42, 9, "someone", None)),
    )
    .await;
    assert_eq!(payload(&a.next(WAIT).await.unwrap())["id"], "42");
    let (event, data) = b.next(WAIT).await.unwrap();
    assert_eq!(
        (
            event.as_str(),
            serde_json::from_str::<Value>(&data).unwrap()["id"].clone()
        ),
        ("update", json!("42"))
    );
}

#[tokio::test]
async fn streams_work_on_a_redis_cluster() {
    let db = migrated_database().await;
    let (nodes, env) = redis_env(true);
    let one = start_streamer(&db, &nodes, &env).await;
    let two = start_streamer(&db, &nodes, &env).await;
    let state = app_state(&db, &nodes, true);
    let (alice, token) = user(&db, "alice", "read").await;
    let mut a = Ws::connect(&one.base_url, "", Auth::Header(&token))
        .await
        .unwrap();
    let mut b = Sse::connect(
        &two.base_url,
        "/api/v1/streaming/hashtag/local?tag=Fedi",
        Some(&token),
    )
    .await
    .unwrap();
    a.subscribe("user", json!({})).await;
    a.subscribe("hashtag:local", json!({"tag": "fedi"})).await;
    // Channels hash to different slots and shards; each is subscribed on its own shard.
    let tag = channel::hashtag("fedi", true);
    until_subscribed(&mut a, &state, &channel::user(alice), WAIT).await;
    until_subscribed(&mut b, &state, &tag, WAIT).await;
    until_subscribed(&mut a, &state, &tag, WAIT).await;
    let ready = reqwest::get(format!("{}/readyz", one.base_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    publish(&state, &tag, &Event::update(&status(5, 9, "x", None))).await;
    assert_eq!(
        a.next(WAIT).await.unwrap()["stream"],
        json!(["hashtag:local", "fedi"])
    );
    assert_eq!(b.next(WAIT).await.unwrap().0, "update");
}

/// A `redis-server` of this test's own on `port`, which it may stop and start again.
fn own_redis(port: u16) -> std::process::Child {
    std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed by `make services-up`")
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn streams_resume_after_redis_restarts_without_dropping_clients() {
    let db = migrated_database().await;
    let port = free_port();
    let mut redis = Killed(own_redis(port));
    let url = format!("redis://127.0.0.1:{port}");
    let addr = format!("127.0.0.1:{port}");
    eventually(
        Duration::from_secs(10),
        "redis-server to listen",
        || async { tokio::net::TcpStream::connect(&addr).await.ok() },
    )
    .await;
    let streamer = start_streamer(&db, &url, &[]).await;
    let state = app_state(&db, &url, false);
    let (alice, token) = user(&db, "alice", "read").await;
    let home = channel::user(alice);
    let mut ws = Ws::connect(&streamer.base_url, "stream=user", Auth::Header(&token))
        .await
        .unwrap();
    let mut sse = Sse::connect(&streamer.base_url, "/api/v1/streaming/user", Some(&token))
        .await
        .unwrap();
    until_subscribed(&mut ws, &state, &home, WAIT).await;
    until_subscribed(&mut sse, &state, &home, WAIT).await;

    // Down: the streamer says so, and keeps its clients.
    let _ = redis.0.kill();
    let _ = redis.0.wait();
    let unready = format!("{}/readyz", streamer.base_url);
    eventually(
        Duration::from_secs(20),
        "the streamer to notice Redis is gone",
        || async {
            let r = reqwest::get(&unready).await.ok()?;
            (r.status() == 503).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Back, empty (no persistence): the streamer subscribes again by itself.
    redis = Killed(own_redis(port));
    until_subscribed(&mut ws, &state, &home, Duration::from_secs(30)).await;
    until_subscribed(&mut sse, &state, &home, WAIT).await;
    publish(&state, &home, &Event::delete(2)).await;
    assert_eq!(ws.next(WAIT).await.unwrap()["payload"], "2");
    assert_eq!(sse.next(WAIT).await.unwrap(), ("delete".into(), "2".into()));
    let ready = reqwest::get(&unready).await.unwrap();
    assert_eq!(ready.status(), 200);
    drop(redis);
}

#[tokio::test]
async fn the_all_role_serves_the_streaming_api_on_the_apis_port() {
    let db = migrated_database().await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let port = free_port();
    let child = server_command(&db, &redis)
        .arg("all")
        .env("FEDI_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
    };
    let health = format!("{}/api/v1/streaming/health", server.base_url);
    eventually(
        Duration::from_secs(30),
        "fedi-server all to serve streaming",
        || async {
            let r = reqwest::get(&health).await.ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    let instance = reqwest::get(format!("{}/api/v1/instance", server.base_url))
        .await
        .unwrap();
    assert_eq!(instance.status(), 200);
    let state = app_state(&db, &redis, false);
    let (alice, token) = user(&db, "alice", "read").await;
    let mut ws = Ws::connect(&server.base_url, "stream=user", Auth::Protocol(&token))
        .await
        .unwrap();
    until_subscribed(&mut ws, &state, &channel::user(alice), WAIT).await;
}

#[tokio::test]
async fn a_stopping_streamer_closes_its_streams_and_exits() {
    let db = migrated_database().await;
    let (redis, env) = redis_env(false);
    let mut streamer = start_streamer(&db, &redis, &env).await;
    let state = app_state(&db, &redis, false);
    let (alice, token) = user(&db, "alice", "read").await;
    let home = channel::user(alice);
    let mut ws = Ws::connect(&streamer.base_url, "stream=user", Auth::Header(&token))
        .await
        .unwrap();
    let mut sse = Sse::connect(&streamer.base_url, "/api/v1/streaming/user", Some(&token))
        .await
        .unwrap();
    until_subscribed(&mut ws, &state, &home, WAIT).await;
    until_subscribed(&mut sse, &state, &home, WAIT).await;
    // SIGTERM, as Kubernetes stops a pod: streams never end by themselves, so the server
    // must close them to stop within the grace period (clients reconnect elsewhere).
    let pid = streamer.child.id().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(ws.closed(WAIT).await, "the WebSocket stays open");
    assert!(sse.ended(WAIT).await, "the event stream goes on");
    let exited = eventually(WAIT, "the streamer to exit", || {
        let status = streamer.child.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(exited.success(), "{exited:?}");
}

/// The filter's query narrows its answer to the viewers only for a short viewer list (a long
/// one costs more to send than it saves): for the viewers, both answers must be the same.
#[tokio::test]
async fn filtering_excludes_the_same_viewers_whether_few_or_many_are_asked_about() {
    use fedi_server::streaming::filter::{Facts, excluded};
    use fedi_server::streaming::schema::Schema;

    let db = migrated_database().await;
    let (redis, _env) = redis_env(false);
    let state = app_state(&db, &redis, false);
    let (author, _) = user(&db, "author", "read").await;
    let (blocker, _) = user(&db, "blocker", "read").await;
    let (blocked, _) = user(&db, "blocked", "read").await;
    let (muter, _) = user(&db, "muter", "read").await;
    let (domain_blocker, _) = user(&db, "domainblocker", "read").await;
    let (friend, _) = user(&db, "friend", "read").await;
    let (stranger, _) = user(&db, "stranger", "read").await;
    sql(
        &db,
        "INSERT INTO blocks (account_id, target_account_id) VALUES ($1, $2), ($2, $3), ($4, $2)",
        &[blocker, author, blocked, stranger],
    )
    .await;
    sql(
        &db,
        "INSERT INTO mutes (account_id, target_account_id) VALUES ($1, $2)",
        &[muter, author],
    )
    .await;
    sql(
        &db,
        "INSERT INTO account_domain_blocks (account_id, domain) VALUES ($1, 'remote.example')",
        &[domain_blocker],
    )
    .await;
    let facts = Facts {
        author,
        targets: vec![author],
        domains: vec!["remote.example".into()],
        language: None,
        notification: false,
    };
    let schema = Schema {
        chosen_languages: true,
        domain_blocks: true,
    };
    let viewers = [blocker, blocked, muter, domain_blocker, friend];
    // Past the length that is sent to the database: ids of no account fill it up.
    let many: Vec<i64> = viewers.iter().copied().chain(1..=1000).collect();
    let few_answer = excluded(&state, schema, &viewers, &facts).await.unwrap();
    let many_answer = excluded(&state, schema, &many, &facts).await.unwrap();
    for answer in [&few_answer, &many_answer] {
        let hidden: Vec<i64> = viewers
            .iter()
            .copied()
            .filter(|v| answer.contains(v))
            .collect();
        assert_eq!(hidden, [blocker, blocked, muter, domain_blocker]);
    }
    // Narrowed to the viewers, the short list's answer names no one else.
    assert!(!few_answer.contains(&stranger), "{few_answer:?}");
}
