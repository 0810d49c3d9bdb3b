//! Polls over HTTP against the real server and PostgreSQL: posting them with a status (form
//! and JSON), the limits the instance advertises and Mastodon's messages, the Poll entity
//! as each viewer sees it, voting and its refusals, hidden totals, editing, the
//! notifications of an ended poll, scopes, and that a refused request stores nothing.

mod common;

use common::*;
use serde_json::{Value, json};

type Api = TestApi;

impl Api {
    async fn sql(&self, sql: &'static str, id: &str) {
        let mut conn = self.conn().await;
        sqlx::query(sql)
            .bind(id.parse::<i64>().unwrap())
            .execute(&mut conn)
            .await
            .unwrap();
    }

    async fn count(&self, table: &str) -> i64 {
        let mut conn = self.conn().await;
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut conn)
            .await
            .unwrap()
    }

    async fn user_with(&self, username: &str, scopes: &str) -> User {
        let (account_id, user_id) = create_user(&self.db, username, "unused-password").await;
        User {
            id: account_id.to_string(),
            token: issue_token(&self.db, Some(user_id), scopes).await,
        }
    }

    async fn user(&self, username: &str) -> User {
        self.user_with(username, "read write follow").await
    }

    /// A status with a poll of `options`, from a form; the status.
    async fn poll_status(&self, user: &User, options: &[&str], extra: &[(&str, &str)]) -> Value {
        let mut form: Vec<(&str, &str)> =
            vec![("status", "which one?"), ("poll[expires_in]", "600")];
        form.extend(options.iter().map(|o| ("poll[options][]", *o)));
        form.extend_from_slice(extra);
        self.call(
            "POST",
            "/api/v1/statuses",
            Some(&user.token),
            Body::Form(&form),
        )
        .await
        .expect(200)
        .json()
    }

    async fn vote(&self, user: &User, poll: &str, choices: &[&str]) -> Reply {
        let form: Vec<(&str, &str)> = choices.iter().map(|c| ("choices[]", *c)).collect();
        self.call(
            "POST",
            &format!("/api/v1/polls/{poll}/votes"),
            Some(&user.token),
            Body::Form(&form),
        )
        .await
    }

    async fn poll(&self, user: Option<&User>, poll: &str) -> Reply {
        self.call(
            "GET",
            &format!("/api/v1/polls/{poll}"),
            user.map(|u| u.token.as_str()),
            Body::None,
        )
        .await
    }
}

fn tallies(poll: &Value) -> Vec<Value> {
    poll["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["votes_count"].clone())
        .collect()
}

#[tokio::test]
async fn polls_are_posted_with_their_status_as_form_or_json() {
    let api = Api::start().await;
    let alice = api.user("alice").await;

    let status = api
        .poll_status(&alice, &["tea", "coffee"], &[("poll[multiple]", "1")])
        .await;
    let poll = &status["poll"];
    assert_eq!(poll["multiple"], true);
    assert_eq!(poll["expired"], false);
    assert_eq!(
        (poll["votes_count"].as_i64(), poll["voters_count"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        poll["options"],
        json!([{"title": "tea", "votes_count": 0}, {"title": "coffee", "votes_count": 0}])
    );
    assert_eq!(poll["emojis"], json!([]));
    // The author cannot vote: Mastodon shows their poll as voted.
    assert_eq!(
        (&poll["voted"], &poll["own_votes"]),
        (&json!(true), &json!([]))
    );
    let expires = chrono_like_seconds(poll["expires_at"].as_str().unwrap());
    let created = chrono_like_seconds(status["created_at"].as_str().unwrap());
    assert!((expires - created - 600).abs() <= 2, "{poll}");

    let json_status = api
        .call(
            "POST",
            "/api/v1/statuses",
            Some(&alice.token),
            Body::Json(json!({"status": "and you?", "poll": {
                "options": ["yes", "no", "maybe"], "expires_in": 300, "hide_totals": true}})),
        )
        .await
        .expect(200)
        .json();
    let poll = &json_status["poll"];
    assert_eq!(poll["multiple"], false);
    assert_eq!(tallies(poll), vec![Value::Null; 3], "hidden totals: {poll}");

    // Anonymous readers get the poll without the viewer's part; the poll endpoint agrees
    // with the status.
    let id = status["id"].as_str().unwrap();
    let anonymous = api
        .call("GET", &format!("/api/v1/statuses/{id}"), None, Body::None)
        .await
        .expect(200)
        .json();
    assert!(anonymous["poll"].get("voted").is_none(), "{anonymous}");
    assert!(anonymous["poll"].get("own_votes").is_none());
    let poll_id = status["poll"]["id"].as_str().unwrap();
    assert_eq!(
        api.poll(None, poll_id).await.expect(200).json(),
        anonymous["poll"]
    );
    assert_eq!(
        api.poll(Some(&alice), poll_id).await.expect(200).json(),
        status["poll"]
    );
    // The limits enforced are the ones the instance advertises.
    let instance = api
        .call("GET", "/api/v2/instance", None, Body::None)
        .await
        .expect(200)
        .json();
    assert_eq!(
        instance["configuration"]["polls"],
        json!({"max_options": 4, "max_characters_per_option": 50,
               "min_expiration": 300, "max_expiration": 2_629_746})
    );
}

/// Seconds since the epoch of a `YYYY-MM-DDTHH:MM:SS.mmmZ` time (same day is enough here:
/// only differences are compared).
fn chrono_like_seconds(t: &str) -> i64 {
    let day: i64 = t[8..10].parse().unwrap();
    let h: i64 = t[11..13].parse().unwrap();
    let m: i64 = t[14..16].parse().unwrap();
    let s: i64 = t[17..19].parse().unwrap();
    ((day * 24 + h) * 60 + m) * 60 + s
}

#[tokio::test]
async fn bad_polls_are_refused_naming_the_field_and_store_nothing() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let mut conn = api.conn().await;
    let (media,): (i64,) = sqlx::query_as(
        "INSERT INTO media_attachments (account_id, type, state) VALUES ($1, 'image', 'ready') \
         RETURNING id",
    )
    .bind(alice.id.parse::<i64>().unwrap())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let long = "x".repeat(51);
    let media = media.to_string();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("poll[options][]", "only")],
            "Poll options must have more than one item",
        ),
        (
            vec![
                ("poll[options][]", "a"),
                ("poll[options][]", "b"),
                ("poll[options][]", "c"),
                ("poll[options][]", "d"),
                ("poll[options][]", "e"),
            ],
            "Poll options can't contain more than 4 items",
        ),
        (
            vec![("poll[options][]", &long), ("poll[options][]", "b")],
            "cannot be longer than 50 characters",
        ),
        (
            vec![("poll[options][]", "a"), ("poll[options][]", "a")],
            "Poll options contain duplicate items",
        ),
        (
            vec![
                ("poll[options][]", "a"),
                ("poll[options][]", "b"),
                ("poll[expires_in]", "299"),
            ],
            "Poll expires at is too soon",
        ),
        (
            vec![
                ("poll[options][]", "a"),
                ("poll[options][]", "b"),
                ("poll[expires_in]", "2629747"),
            ],
            "too far into the future",
        ),
        (
            vec![
                ("poll[options][]", "a"),
                ("poll[options][]", "b"),
                ("poll[expires_in]", "soon"),
            ],
            "expires_in",
        ),
        (
            vec![
                ("poll[options][]", "a"),
                ("poll[options][]", "b"),
                ("media_ids[]", &media),
            ],
            "media_ids cannot be combined with a poll",
        ),
    ];
    for (extra, message) in cases {
        let mut form = vec![("status", "a question")];
        if !extra.iter().any(|(k, _)| *k == "poll[expires_in]") {
            form.push(("poll[expires_in]", "600"));
        }
        form.extend(extra);
        api.call(
            "POST",
            "/api/v1/statuses",
            Some(&alice.token),
            Body::Form(&form),
        )
        .await
        .refused(message);
    }
    api.call(
        "POST",
        "/api/v1/statuses",
        Some(&alice.token),
        Body::Json(json!({"status": "q", "poll": {"options": ["a", "b"]}})),
    )
    .await
    .refused("Poll expires at can't be blank");
    api.call(
        "POST",
        "/api/v1/statuses",
        Some(&alice.token),
        Body::Json(json!({"status": "q", "poll": "a, b"})),
    )
    .await
    .refused("Poll must be an object");
    assert_eq!(api.count("statuses").await, 0);
    assert_eq!(api.count("polls").await, 0);
    let (attached,): (Option<i64>,) =
        sqlx::query_as("SELECT status_id FROM media_attachments WHERE id = $1")
            .bind(media.parse::<i64>().unwrap())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(attached, None);
}

#[tokio::test]
async fn votes_are_counted_once_per_account_with_mastodons_refusals() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let single = api.poll_status(&alice, &["a", "b", "c"], &[]).await;
    let single = single["poll"]["id"].as_str().unwrap().to_string();

    let poll = api.vote(&bob, &single, &["1"]).await.expect(200).json();
    assert_eq!(tallies(&poll), vec![json!(0), json!(1), json!(0)]);
    assert_eq!(
        (poll["votes_count"].as_i64(), poll["voters_count"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (&poll["voted"], &poll["own_votes"]),
        (&json!(true), &json!([1]))
    );
    // Others see the count, not Bob's choice.
    let seen = api.poll(Some(&carol), &single).await.expect(200).json();
    assert_eq!(
        (&seen["voted"], &seen["own_votes"]),
        (&json!(false), &json!([]))
    );
    assert_eq!(tallies(&seen), tallies(&poll));

    api.vote(&bob, &single, &["2"])
        .await
        .refused("Validation failed: You have already voted on this poll");
    api.vote(&carol, &single, &["0", "2"])
        .await
        .refused("You have already voted on this poll");
    api.vote(&carol, &single, &["3"])
        .await
        .refused("Validation failed: The chosen vote option does not exist");
    api.vote(&carol, &single, &["-1"])
        .await
        .refused("The chosen vote option does not exist");
    api.vote(&carol, &single, &[])
        .await
        .refused("choices can't be blank");
    api.vote(&alice, &single, &["0"])
        .await
        .refused("Validation failed: You cannot vote in your own polls");
    assert_eq!(
        api.count("poll_votes").await,
        1,
        "a refused vote stored nothing"
    );

    // Multiple choice: several at once, more later, never the same one twice.
    let multiple = api
        .poll_status(&alice, &["x", "y", "z"], &[("poll[multiple]", "true")])
        .await;
    let multiple = multiple["poll"]["id"].as_str().unwrap().to_string();
    // JSON with numbers, as some clients send.
    let poll = api
        .call(
            "POST",
            &format!("/api/v1/polls/{multiple}/votes"),
            Some(&carol.token),
            Body::Json(json!({"choices": [0, 2]})),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(tallies(&poll), vec![json!(1), json!(0), json!(1)]);
    assert_eq!(
        (poll["votes_count"].as_i64(), poll["voters_count"].as_i64()),
        (Some(2), Some(1))
    );
    api.vote(&carol, &multiple, &["2"])
        .await
        .refused("already voted");
    api.vote(&carol, &multiple, &["1", "1"])
        .await
        .refused("already voted");
    let poll = api.vote(&carol, &multiple, &["1"]).await.expect(200).json();
    assert_eq!(poll["own_votes"], json!([0, 1, 2]));
    let poll = api.vote(&bob, &multiple, &["1"]).await.expect(200).json();
    assert_eq!(
        (poll["votes_count"].as_i64(), poll["voters_count"].as_i64()),
        (Some(4), Some(2))
    );

    // An ended poll takes no votes and says so.
    api.sql(
        "UPDATE polls SET expires_at = now() - interval '1 second' WHERE id = $1",
        &single,
    )
    .await;
    api.vote(&carol, &single, &["0"])
        .await
        .refused("Validation failed: The poll has already ended");
    let ended = api.poll(Some(&carol), &single).await.expect(200).json();
    assert_eq!(ended["expired"], true);

    // Unknown polls, and polls of statuses the voter may not see, do not exist.
    api.vote(&carol, "1", &["0"]).await.expect(404);
    api.vote(&carol, "nope", &["0"]).await.expect(404);
    api.poll(Some(&carol), "1").await.expect(404);
    let private = api
        .poll_status(&alice, &["p", "q"], &[("visibility", "private")])
        .await;
    let private = private["poll"]["id"].as_str().unwrap().to_string();
    api.poll(Some(&carol), &private).await.expect(404);
    api.poll(None, &private).await.expect(404);
    api.vote(&carol, &private, &["0"]).await.expect(404);

    // Scopes: reading needs read:statuses if a token is given, voting write:statuses.
    let reader = api.user_with("dave", "read:statuses").await;
    let notifier = api
        .user_with("erin", "read:notifications write:notifications")
        .await;
    api.vote(&reader, &multiple, &["0"]).await.expect(403);
    api.poll(Some(&notifier), &multiple).await.expect(403);
    api.poll(Some(&reader), &multiple).await.expect(200);
    api.call(
        "POST",
        &format!("/api/v1/polls/{multiple}/votes"),
        None,
        Body::Form(&[("choices[]", "0")]),
    )
    .await
    .expect(401);
    assert_eq!(api.count("poll_votes").await, 5);
}

#[tokio::test]
async fn hidden_totals_show_once_the_poll_ends() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let status = api
        .poll_status(&alice, &["a", "b"], &[("poll[hide_totals]", "true")])
        .await;
    let id = status["poll"]["id"].as_str().unwrap().to_string();
    let poll = api.vote(&bob, &id, &["1"]).await.expect(200).json();
    // Hidden from everyone, the author included, as Mastodon's `show_totals_now?`; the
    // total itself stays visible.
    assert_eq!(tallies(&poll), vec![Value::Null, Value::Null]);
    assert_eq!(poll["votes_count"], 1);
    let by_author = api.poll(Some(&alice), &id).await.expect(200).json();
    assert_eq!(tallies(&by_author), vec![Value::Null, Value::Null]);
    api.sql(
        "UPDATE polls SET expires_at = now() - interval '1 second' WHERE id = $1",
        &id,
    )
    .await;
    let ended = api.poll(None, &id).await.expect(200).json();
    assert_eq!(tallies(&ended), vec![json!(0), json!(1)]);
}

#[tokio::test]
async fn an_ended_poll_notifies_its_voters_and_author_once() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let status = api
        .poll_status(&alice, &["a", "b"], &[("poll[multiple]", "true")])
        .await;
    let status_id = status["id"].as_str().unwrap().to_string();
    let id = status["poll"]["id"].as_str().unwrap().to_string();
    api.vote(&bob, &id, &["0", "1"]).await.expect(200);

    let kinds = |user: &User| {
        let api = &api;
        let token = user.token.clone();
        async move {
            let list = api
                .call("GET", "/api/v1/notifications", Some(&token), Body::None)
                .await
                .expect(200)
                .json();
            list.as_array()
                .unwrap()
                .iter()
                .map(|n| {
                    (
                        n["type"].as_str().unwrap().to_string(),
                        n["account"]["id"].as_str().unwrap().to_string(),
                        n["status"]["id"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    // Not before it ends.
    assert_eq!(kinds(&bob).await, vec![]);
    api.sql(
        "UPDATE polls SET expires_at = now() - interval '1 second' WHERE id = $1",
        &id,
    )
    .await;
    let expected = vec![("poll".to_string(), alice.id.clone(), status_id.clone())];
    assert_eq!(kinds(&bob).await, expected);
    assert_eq!(kinds(&alice).await, expected);
    assert_eq!(kinds(&carol).await, vec![]);
    // Asked again, still once each.
    assert_eq!(kinds(&bob).await, expected);
    assert_eq!(api.count("notifications").await, 2);
    let notification = api
        .call("GET", "/api/v1/notifications", Some(&bob.token), Body::None)
        .await
        .json();
    assert_eq!(notification[0]["status"]["poll"]["expired"], true);
}

#[tokio::test]
async fn editing_the_poll_keeps_or_resets_the_votes_as_mastodon() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let status = api.poll_status(&alice, &["a", "b"], &[]).await;
    let status_id = status["id"].as_str().unwrap().to_string();
    let poll_id = status["poll"]["id"].as_str().unwrap().to_string();
    api.vote(&bob, &poll_id, &["0"]).await.expect(200);
    let edit = |form: Vec<(&'static str, &'static str)>| {
        let api = &api;
        let token = alice.token.clone();
        let path = format!("/api/v1/statuses/{status_id}");
        async move {
            api.call("PUT", &path, Some(&token), Body::Form(&form))
                .await
                .expect(200)
                .json()
        }
    };
    // The same question: the votes stay.
    let same = edit(vec![
        ("status", "which one, really?"),
        ("poll[options][]", "a"),
        ("poll[options][]", "b"),
        ("poll[expires_in]", "600"),
    ])
    .await;
    assert_eq!(same["poll"]["votes_count"], 1, "{same}");
    assert_eq!(same["poll"]["id"], poll_id.as_str());
    // Another question: the votes were for something else.
    let changed = edit(vec![
        ("status", "which one, really?"),
        ("poll[options][]", "a"),
        ("poll[options][]", "c"),
        ("poll[expires_in]", "900"),
    ])
    .await;
    assert_eq!(tallies(&changed["poll"]), vec![json!(0), json!(0)]);
    assert_eq!(changed["poll"]["votes_count"], 0);
    assert_eq!(changed["poll"]["options"][1]["title"], "c");
    api.vote(&bob, &poll_id, &["1"]).await.expect(200);
    // A bad poll in an edit changes nothing.
    api.call(
        "PUT",
        &format!("/api/v1/statuses/{status_id}"),
        Some(&alice.token),
        Body::Form(&[
            ("status", "x"),
            ("poll[options][]", "only"),
            ("poll[expires_in]", "600"),
        ]),
    )
    .await
    .refused("Poll options must have more than one item");
    assert_eq!(api.count("poll_votes").await, 1);
    // No poll in the edit removes it, as Mastodon's clients expect.
    let removed = edit(vec![("status", "never mind")]).await;
    assert!(removed["poll"].is_null(), "{removed}");
    assert_eq!(
        (api.count("polls").await, api.count("poll_votes").await),
        (0, 0)
    );
}

#[tokio::test]
async fn simultaneous_votes_of_one_account_count_once() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let status = api.poll_status(&alice, &["a", "b", "c", "d"], &[]).await;
    let id = status["poll"]["id"].as_str().unwrap().to_string();
    // Four answers to a single-choice poll at once: one wins, the others are refused.
    let choices: [[&str; 1]; 4] = [["0"], ["1"], ["2"], ["3"]];
    let replies = futures::future::join_all(choices.iter().map(|c| api.vote(&bob, &id, c))).await;
    let accepted = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        accepted,
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 422));
    assert_eq!(api.count("poll_votes").await, 1);
}
