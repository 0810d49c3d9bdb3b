//! The statuses API over HTTP against the real server, PostgreSQL and Redis: posting,
//! reading, editing and deleting; who may see what (the followers-only leak class of
//! SECURITY.md) through every endpoint that shows statuses; rendering and sanitizing;
//! threads; favourites, reblogs, bookmarks and pins; idempotency keys; limits; scopes; and
//! that a refused post leaves nothing behind.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::header;
use serde_json::{Value, json};

enum Body {
    None,
    Form(Vec<(String, String)>),
    Json(Value),
}

fn form(pairs: &[(&str, &str)]) -> Body {
    Body::Form(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

struct Api {
    server: Server,
    db: String,
    http: reqwest::Client,
}

/// A user of the test: account id and a token.
#[derive(Clone)]
struct User {
    id: String,
    token: String,
}

impl Api {
    async fn start() -> Self {
        let (server, db) = api_on_fresh_database(&[]).await;
        Self {
            server,
            db,
            http: reqwest::Client::new(),
        }
    }

    /// The same against the shared Redis cluster.
    async fn start_cluster() -> Self {
        let db = migrated_database().await;
        let nodes = service_env("FEDI_TEST_REDIS_CLUSTER_NODES");
        let server = start_api_with(&db, &nodes, &[("FEDI_REDIS_MODE", "cluster")]).await;
        Self {
            server,
            db,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        let path = path.strip_prefix("https://test.example").unwrap_or(path);
        format!("{}{path}", self.server.base_url)
    }

    async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req = match body {
            Body::None => req,
            Body::Form(pairs) => req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(&pairs).unwrap()),
            Body::Json(v) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(v.to_string()),
        };
        Reply::read(req.send().await.expect("the server answers")).await
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Body) -> Reply {
        self.call_with(method, path, token, body, &[]).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call("GET", path, token, Body::None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Body) -> Reply {
        self.call("POST", path, token, body).await
    }

    async fn conn(&self) -> sqlx::PgConnection {
        <sqlx::PgConnection as sqlx::Connection>::connect(&self.db)
            .await
            .unwrap()
    }

    /// A local, confirmed account with a token of `scopes` (no password hashing: nobody
    /// signs in with it).
    async fn user_with(&self, username: &str, scopes: &str) -> User {
        let mut conn = self.conn().await;
        let (account_id,): (i64,) =
            sqlx::query_as("INSERT INTO accounts (username) VALUES ($1) RETURNING id")
                .bind(username)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let (user_id,): (i64,) = sqlx::query_as(
            "INSERT INTO users (account_id, email, password_hash, confirmed_at) \
             VALUES ($1, $2, 'not-a-hash', now()) RETURNING id",
        )
        .bind(account_id)
        .bind(format!("{username}@mail.example"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        User {
            id: account_id.to_string(),
            token: issue_token(&self.db, Some(user_id), scopes).await,
        }
    }

    async fn user(&self, username: &str) -> User {
        self.user_with(username, "read write follow").await
    }

    /// Another token of the same user, with other scopes.
    async fn token_for(&self, user: &User, scopes: &str) -> String {
        let mut conn = self.conn().await;
        let (user_id,): (i64,) = sqlx::query_as("SELECT id FROM users WHERE account_id = $1")
            .bind(user.id.parse::<i64>().unwrap())
            .fetch_one(&mut conn)
            .await
            .unwrap();
        issue_token(&self.db, Some(user_id), scopes).await
    }

    async fn post_status(&self, user: &User, pairs: &[(&str, &str)]) -> Value {
        self.post("/api/v1/statuses", Some(&user.token), form(pairs))
            .await
            .expect(200)
            .json()
    }

    async fn follow(&self, follower: &User, target: &User) {
        let rel = self
            .post(
                &format!("/api/v1/accounts/{}/follow", target.id),
                Some(&follower.token),
                Body::None,
            )
            .await
            .expect(200)
            .json();
        assert_eq!(rel["following"], true, "{rel}");
    }

    /// A processed image of `owner`, unattached.
    async fn media(&self, owner: &User) -> String {
        let mut conn = self.conn().await;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO media_attachments (account_id, type, state, description) \
             VALUES ($1, 'image', 'ready', 'a test image') RETURNING id",
        )
        .bind(owner.id.parse::<i64>().unwrap())
        .fetch_one(&mut conn)
        .await
        .unwrap();
        id.to_string()
    }

    async fn count(&self, table: &str) -> i64 {
        let mut conn = self.conn().await;
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut conn)
            .await
            .unwrap()
    }
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn id_set(list: &Value) -> BTreeSet<String> {
    ids(list).into_iter().collect()
}

#[tokio::test]
async fn statuses_are_posted_read_edited_and_deleted() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let status = api
        .post_status(
            &alice,
            &[
                ("status", "Hello\n\nworld"),
                ("language", "en-GB"),
                ("spoiler_text", "greeting"),
            ],
        )
        .await;
    let id = status["id"].as_str().unwrap().to_string();
    assert_eq!(status["content"], "<p>Hello</p><p>world</p>");
    assert_eq!(status["visibility"], "public");
    assert_eq!(status["language"], "en");
    assert_eq!(status["spoiler_text"], "greeting");
    // A content warning makes the status sensitive.
    assert_eq!(status["sensitive"], true);
    assert_eq!(
        status["uri"],
        format!("https://test.example/users/alice/statuses/{id}")
    );
    assert_eq!(status["url"], format!("https://test.example/@alice/{id}"));
    assert_eq!(status["account"]["id"], alice.id.as_str());
    assert_eq!(status["account"]["statuses_count"], 1);
    assert!(
        status["account"]["last_status_at"]
            .as_str()
            .is_some_and(|d| d.len() == 10),
        "{status}"
    );
    assert_eq!(status["application"]["name"], "test");
    assert_eq!(
        (
            &status["favourited"],
            &status["reblogged"],
            &status["bookmarked"],
            &status["pinned"]
        ),
        (&json!(false), &json!(false), &json!(false), &json!(false))
    );
    for key in ["reblog", "poll", "card", "edited_at", "in_reply_to_id"] {
        assert!(status[key].is_null(), "{key}: {status}");
    }
    assert!(status.get("text").is_none(), "{status}");

    // Public: anyone reads it; the application and the viewer's own marks only as they
    // apply.
    let anonymous = api
        .get(&format!("/api/v1/statuses/{id}"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(anonymous["content"], status["content"]);
    for key in ["favourited", "pinned", "application", "bookmarked"] {
        assert!(anonymous.get(key).is_none(), "{key}: {anonymous}");
    }
    let as_bob = api
        .get(&format!("/api/v1/statuses/{id}"), Some(&bob.token))
        .await
        .expect(200)
        .json();
    assert_eq!(as_bob["favourited"], false);
    assert!(as_bob.get("pinned").is_none() && as_bob.get("application").is_none());
    api.get("/api/v1/statuses/123", None).await.expect(404);
    api.get("/api/v1/statuses/nope", None).await.expect(404);

    // Unedited: a history of one version.
    let history = api
        .get(&format!("/api/v1/statuses/{id}/history"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");

    // Only the author edits; others are told it does not exist.
    api.call(
        "PUT",
        &format!("/api/v1/statuses/{id}"),
        Some(&bob.token),
        form(&[("status", "hijacked")]),
    )
    .await
    .expect(404);
    let edited = api
        .call(
            "PUT",
            &format!("/api/v1/statuses/{id}"),
            Some(&alice.token),
            Body::Json(json!({"status": "Hello #edited", "spoiler_text": ""})),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(edited["id"], id.as_str());
    assert!(
        edited["content"]
            .as_str()
            .unwrap()
            .starts_with("<p>Hello <a href=\"https://test.example/tags/edited\""),
        "{edited}"
    );
    assert_eq!(
        edited["tags"],
        json!([{"name": "edited", "url": "https://test.example/tags/edited"}])
    );
    assert_eq!(edited["spoiler_text"], "");
    // Clearing the content warning without a `sensitive` clears the flag, as in Mastodon.
    assert_eq!(edited["sensitive"], false);
    assert!(edited["edited_at"].is_string(), "{edited}");
    // An edit that changes nothing records nothing.
    api.call(
        "PUT",
        &format!("/api/v1/statuses/{id}"),
        Some(&alice.token),
        form(&[("status", "Hello #edited")]),
    )
    .await
    .expect(200);
    let history = api
        .get(&format!("/api/v1/statuses/{id}/history"), None)
        .await
        .expect(200)
        .json();
    let versions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["content"].as_str().unwrap())
        .collect();
    assert_eq!(versions.len(), 2, "{history}");
    assert_eq!(versions[0], "<p>Hello</p><p>world</p>");
    assert!(versions[1].contains("#<span>edited</span>"), "{history}");
    assert_eq!(history[0]["spoiler_text"], "greeting");
    assert_eq!(history[1]["account"]["id"], alice.id.as_str());

    let source = api
        .get(&format!("/api/v1/statuses/{id}/source"), Some(&alice.token))
        .await
        .expect(200)
        .json();
    assert_eq!(
        source,
        json!({"id": id, "text": "Hello #edited", "spoiler_text": ""})
    );
    api.get(&format!("/api/v1/statuses/{id}/source"), None)
        .await
        .expect(401);

    // Deleting: only one's own; the answer carries the text for a redraft.
    api.call(
        "DELETE",
        &format!("/api/v1/statuses/{id}"),
        Some(&bob.token),
        Body::None,
    )
    .await
    .expect(404);
    let deleted = api
        .call(
            "DELETE",
            &format!("/api/v1/statuses/{id}"),
            Some(&alice.token),
            Body::None,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(deleted["text"], "Hello #edited");
    assert_eq!(deleted["id"], id.as_str());
    api.get(&format!("/api/v1/statuses/{id}"), None)
        .await
        .expect(404);
    assert_eq!(api.count("status_edits").await, 0);
    let account = api
        .get(&format!("/api/v1/accounts/{}", alice.id), None)
        .await
        .expect(200)
        .json();
    assert_eq!(account["statuses_count"], 0);
    assert!(account["last_status_at"].is_null());
}

/// SECURITY.md: followers-only and direct statuses never reach anyone not entitled, through
/// any endpoint that shows statuses.
#[tokio::test]
async fn visibility_decides_who_sees_a_status_everywhere() {
    let api = Api::start().await;
    let author = api.user("author").await;
    let follower = api.user("follower").await;
    let mentioned = api.user("mentioned").await;
    let stranger = api.user("stranger").await;
    api.follow(&follower, &author).await;

    let root = api
        .post_status(&author, &[("status", "a thread"), ("visibility", "public")])
        .await;
    let root_id = root["id"].as_str().unwrap().to_string();
    let mut posted = Vec::new();
    for visibility in ["public", "unlisted", "private", "direct"] {
        let s = api
            .post_status(
                &author,
                &[
                    ("status", &format!("@mentioned {visibility} reply")),
                    ("visibility", visibility),
                    ("in_reply_to_id", &root_id),
                ],
            )
            .await;
        assert_eq!(s["visibility"], visibility);
        assert_eq!(s["mentions"][0]["acct"], "mentioned", "{s}");
        assert_eq!(s["in_reply_to_id"], root_id.as_str());
        assert_eq!(s["in_reply_to_account_id"], author.id.as_str());
        posted.push((visibility, s["id"].as_str().unwrap().to_string()));
    }
    // A private status that mentions no one: the mentioned account is a stranger to it.
    let followers_only = api
        .post_status(
            &author,
            &[("status", "just followers"), ("visibility", "private")],
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let viewers: [(&str, Option<&User>); 5] = [
        ("author", Some(&author)),
        ("follower", Some(&follower)),
        ("mentioned", Some(&mentioned)),
        ("stranger", Some(&stranger)),
        ("anonymous", None),
    ];
    let sees = |viewer: &str, visibility: &str| match visibility {
        "public" | "unlisted" => true,
        "private" => matches!(viewer, "author" | "follower" | "mentioned"),
        "direct" => matches!(viewer, "author" | "mentioned"),
        _ => unreachable!(),
    };
    for (name, user) in viewers {
        let token = user.map(|u| u.token.as_str());
        let mut expected = BTreeSet::new();
        for (visibility, id) in &posted {
            let reply = api.get(&format!("/api/v1/statuses/{id}"), token).await;
            let want = sees(name, visibility);
            assert_eq!(
                reply.status,
                if want { 200 } else { 404 },
                "{name} GET {visibility}: {}",
                reply.text()
            );
            // Hidden: not even its thread, edits or the accounts that acted on it.
            for sub in ["context", "history", "favourited_by", "reblogged_by"] {
                let r = api
                    .get(&format!("/api/v1/statuses/{id}/{sub}"), token)
                    .await;
                assert_eq!(
                    r.status,
                    if want { 200 } else { 404 },
                    "{name} {sub} {visibility}"
                );
            }
            if let Some(user) = user
                && !want
            {
                for action in ["favourite", "reblog", "bookmark", "pin"] {
                    api.post(
                        &format!("/api/v1/statuses/{id}/{action}"),
                        Some(&user.token),
                        Body::None,
                    )
                    .await
                    .expect(404);
                }
                api.get(&format!("/api/v1/statuses/{id}/source"), Some(&user.token))
                    .await
                    .expect(404);
            }
            if want {
                expected.insert(id.clone());
            }
        }
        let context = api
            .get(&format!("/api/v1/statuses/{root_id}/context"), token)
            .await
            .expect(200)
            .json();
        assert_eq!(id_set(&context["descendants"]), expected, "{name} context");

        let mut listed = expected.clone();
        listed.insert(root_id.clone());
        if matches!(name, "author" | "follower") {
            listed.insert(followers_only.clone());
        }
        let statuses = api
            .get(&format!("/api/v1/accounts/{}/statuses", author.id), token)
            .await
            .expect(200)
            .json();
        assert_eq!(id_set(&statuses), listed, "{name} account statuses");
        let single = api
            .get(&format!("/api/v1/statuses/{followers_only}"), token)
            .await;
        assert_eq!(
            single.status,
            if matches!(name, "author" | "follower") {
                200
            } else {
                404
            },
            "{name} followers-only without mention"
        );
    }

    // Private and direct cannot be reblogged by others (403 for who can see them); a
    // follower's favourite works and shows in the count that the author sees.
    let private = &posted[2].1;
    let direct = &posted[3].1;
    api.post(
        &format!("/api/v1/statuses/{private}/reblog"),
        Some(&follower.token),
        Body::None,
    )
    .await
    .expect(403);
    api.post(
        &format!("/api/v1/statuses/{direct}/reblog"),
        Some(&mentioned.token),
        Body::None,
    )
    .await
    .expect(403);
    api.post(
        &format!("/api/v1/statuses/{direct}/reblog"),
        Some(&author.token),
        Body::None,
    )
    .await
    .expect(403);
    // The author may share their own followers-only post again, to the same followers.
    let self_reblog = api
        .post(
            &format!("/api/v1/statuses/{private}/reblog"),
            Some(&author.token),
            form(&[("visibility", "public")]),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(self_reblog["visibility"], "private");
    let reblog_id = self_reblog["id"].as_str().unwrap();
    api.get(&format!("/api/v1/statuses/{reblog_id}"), None)
        .await
        .expect(404);
    api.get(
        &format!("/api/v1/statuses/{reblog_id}"),
        Some(&stranger.token),
    )
    .await
    .expect(404);
    api.get(
        &format!("/api/v1/statuses/{reblog_id}"),
        Some(&follower.token),
    )
    .await
    .expect(200);
    let fav = api
        .post(
            &format!("/api/v1/statuses/{private}/favourite"),
            Some(&follower.token),
            Body::None,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(fav["favourited"], true);
    assert_eq!(fav["favourites_count"], 1);

    // Replies to a status one cannot see are refused as if it did not exist.
    api.post(
        "/api/v1/statuses",
        Some(&stranger.token),
        form(&[("status", "sneaky"), ("in_reply_to_id", direct)]),
    )
    .await
    .expect(404);

    // Unfollowing takes the followers-only posts away at once.
    api.post(
        &format!("/api/v1/accounts/{}/unfollow", author.id),
        Some(&follower.token),
        Body::None,
    )
    .await
    .expect(200);
    api.get(
        &format!("/api/v1/statuses/{followers_only}"),
        Some(&follower.token),
    )
    .await
    .expect(404);
    // And so from the favourites list, though the favourite row stays.
    let favourites = api
        .get("/api/v1/favourites", Some(&follower.token))
        .await
        .expect(200)
        .json();
    assert_eq!(favourites, json!([]));

    // A blocked user sees none of the blocker's statuses, public or not.
    api.post(
        &format!("/api/v1/accounts/{}/block", stranger.id),
        Some(&author.token),
        Body::None,
    )
    .await
    .expect(200);
    api.get(
        &format!("/api/v1/statuses/{root_id}"),
        Some(&stranger.token),
    )
    .await
    .expect(404);
    let statuses = api
        .get(
            &format!("/api/v1/accounts/{}/statuses", author.id),
            Some(&stranger.token),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(statuses, json!([]));
}

#[tokio::test]
async fn mentions_hashtags_and_links_are_rendered_and_nothing_typed_becomes_markup() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("Bob").await;

    let status = api
        .post_status(
            &alice,
            &[(
                "status",
                "hi @bob and @nobody, see https://example.com/some/quite/long/path?x=1&y=2 \
                 #Rust #rust #café\n<script>alert(1)</script><img src=x onerror=alert(1)> \
                 \"><a href=\"javascript:alert(1)\">x</a>",
            )],
        )
        .await;
    let content = status["content"].as_str().unwrap();
    assert!(
        content.contains(
            "<span class=\"h-card\" translate=\"no\"><a href=\"https://test.example/@Bob\" \
             class=\"u-url mention\">@<span>Bob</span></a></span>"
        ),
        "{content}"
    );
    assert!(content.contains(" @nobody, "), "{content}");
    assert!(
        content.contains(
            "<a href=\"https://example.com/some/quite/long/path?x=1&amp;y=2\" target=\"_blank\" \
             rel=\"nofollow noopener\" translate=\"no\"><span class=\"invisible\">https://</span>\
             <span class=\"ellipsis\">example.com/some/quite/long/pa</span>"
        ),
        "{content}"
    );
    assert!(
        content.contains(
            "<a href=\"https://test.example/tags/Rust\" class=\"mention hashtag\" rel=\"tag\">\
             #<span>Rust</span></a>"
        ),
        "{content}"
    );
    assert!(content.contains("tags/caf%C3%A9"), "{content}");
    assert!(
        content.contains(
            "<br />&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; \
             &quot;&gt;&lt;a href=&quot;javascript:alert(1)&quot;&gt;x&lt;/a&gt;</p>"
        ),
        "{content}"
    );
    assert!(
        !content.contains("<script") && !content.contains("<img"),
        "{content}"
    );
    assert_eq!(
        status["mentions"],
        json!([{
            "id": bob.id, "username": "Bob", "acct": "Bob", "url": "https://test.example/@Bob"
        }])
    );
    let tags: Vec<&str> = status["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["café", "Rust"]);
    assert_eq!(api.count("mentions").await, 1);
    assert_eq!(api.count("tags").await, 2);

    // The same tag in another case is the same tag; `tagged` finds statuses by it.
    api.post_status(&alice, &[("status", "more #RUST")]).await;
    api.post_status(&alice, &[("status", "untagged")]).await;
    assert_eq!(api.count("tags").await, 2);
    let tagged = api
        .get(
            &format!("/api/v1/accounts/{}/statuses?tagged=rust", alice.id),
            None,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(tagged.as_array().unwrap().len(), 2, "{tagged}");
}

#[tokio::test]
async fn threads_come_back_in_order_from_any_of_their_statuses() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = |user: &User, text: &str, parent: Option<&str>| {
        let mut pairs = vec![("status", text.to_string())];
        if let Some(p) = parent {
            pairs.push(("in_reply_to_id", p.to_string()));
        }
        let token = user.token.clone();
        let api = &api;
        async move {
            api.post(
                "/api/v1/statuses",
                Some(&token),
                Body::Form(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
            )
            .await
            .expect(200)
            .json()["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let root = post(&alice, "root", None).await;
    let a = post(&bob, "a", Some(&root)).await;
    let a1 = post(&alice, "a1", Some(&a)).await;
    let b = post(&bob, "b", Some(&root)).await;
    let a2 = post(&bob, "a2", Some(&a)).await;
    let a1x = post(&alice, "a1x", Some(&a1)).await;

    let context = api
        .get(&format!("/api/v1/statuses/{root}/context"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(context["ancestors"], json!([]));
    assert_eq!(
        ids(&context["descendants"]),
        [
            a.as_str(),
            a1.as_str(),
            a1x.as_str(),
            a2.as_str(),
            b.as_str()
        ]
    );
    let context = api
        .get(&format!("/api/v1/statuses/{a1x}/context"), Some(&bob.token))
        .await
        .expect(200)
        .json();
    assert_eq!(
        ids(&context["ancestors"]),
        [root.as_str(), a.as_str(), a1.as_str()]
    );
    assert_eq!(context["descendants"], json!([]));
    let root_status = api
        .get(&format!("/api/v1/statuses/{root}"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(root_status["replies_count"], 2);

    // Deleting a status in the middle keeps the replies; they lose their parent.
    api.call(
        "DELETE",
        &format!("/api/v1/statuses/{a1}"),
        Some(&alice.token),
        Body::None,
    )
    .await
    .expect(200);
    let orphan = api
        .get(&format!("/api/v1/statuses/{a1x}"), None)
        .await
        .expect(200)
        .json();
    assert!(orphan["in_reply_to_id"].is_null(), "{orphan}");

    // exclude_replies keeps one's own threads (a2 answers bob's own a), drops replies to
    // others; the orphaned a1x is no reply any more.
    let alice_self = post(&alice, "self-reply", Some(&root)).await;
    let listed = api
        .get(
            &format!("/api/v1/accounts/{}/statuses?exclude_replies=true", bob.id),
            None,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(ids(&listed), [a2.as_str()]);
    let listed = api
        .get(
            &format!("/api/v1/accounts/{}/statuses?exclude_replies=1", alice.id),
            None,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        ids(&listed),
        [alice_self.as_str(), a1x.as_str(), root.as_str()]
    );
}

#[tokio::test]
async fn favourites_reblogs_bookmarks_and_pins_show_in_counts_flags_and_lists() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let status = api.post_status(&alice, &[("status", "like me")]).await;
    let id = status["id"].as_str().unwrap().to_string();
    let act = |user: &User, action: &str| {
        let path = format!("/api/v1/statuses/{id}/{action}");
        let token = user.token.clone();
        let api = &api;
        async move {
            api.post(&path, Some(&token), Body::None)
                .await
                .expect(200)
                .json()
        }
    };

    for _ in 0..2 {
        let s = act(&bob, "favourite").await;
        assert_eq!(
            (&s["favourited"], &s["favourites_count"]),
            (&json!(true), &json!(1))
        );
    }
    act(&carol, "favourite").await;
    let s = act(&bob, "bookmark").await;
    assert_eq!(s["bookmarked"], true);
    let reblog = act(&bob, "reblog").await;
    assert_eq!(reblog["reblog"]["id"], id.as_str());
    assert_eq!(reblog["reblog"]["reblogged"], true);
    assert_eq!(reblog["reblog"]["reblogs_count"], 1);
    assert_eq!(reblog["account"]["id"], bob.id.as_str());
    assert_eq!(reblog["content"], "");
    assert!(
        reblog["uri"].as_str().unwrap().ends_with("/activity"),
        "{reblog}"
    );
    // Reblogging again returns the same reblog.
    let again = act(&bob, "reblog").await;
    assert_eq!(again["id"], reblog["id"]);
    let reblog_id = reblog["id"].as_str().unwrap().to_string();

    let seen_by_bob = api
        .get(&format!("/api/v1/statuses/{id}"), Some(&bob.token))
        .await
        .expect(200)
        .json();
    assert_eq!(
        (
            &seen_by_bob["favourited"],
            &seen_by_bob["reblogged"],
            &seen_by_bob["bookmarked"],
            &seen_by_bob["favourites_count"],
            &seen_by_bob["reblogs_count"],
        ),
        (
            &json!(true),
            &json!(true),
            &json!(true),
            &json!(2),
            &json!(1)
        )
    );
    let seen_by_carol = api
        .get(&format!("/api/v1/statuses/{id}"), Some(&carol.token))
        .await
        .expect(200)
        .json();
    assert_eq!(
        (
            &seen_by_carol["favourited"],
            &seen_by_carol["reblogged"],
            &seen_by_carol["bookmarked"]
        ),
        (&json!(true), &json!(false), &json!(false))
    );

    let favourited_by = api
        .get(&format!("/api/v1/statuses/{id}/favourited_by"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(ids(&favourited_by), [carol.id.as_str(), bob.id.as_str()]);
    let first = api
        .get(
            &format!("/api/v1/statuses/{id}/favourited_by?limit=1"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(ids(&first.json()), [carol.id.as_str()]);
    let next = api
        .get(&first.link("next").expect("a next link"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(ids(&next), [bob.id.as_str()]);
    let reblogged_by = api
        .get(&format!("/api/v1/statuses/{id}/reblogged_by"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(ids(&reblogged_by), [bob.id.as_str()]);

    // The user's own lists, paged by when things were marked.
    let later = api.post_status(&alice, &[("status", "later")]).await;
    let later_id = later["id"].as_str().unwrap().to_string();
    let earlier_bookmark = api
        .post(
            &format!("/api/v1/statuses/{later_id}/bookmark"),
            Some(&bob.token),
            Body::None,
        )
        .await
        .expect(200);
    drop(earlier_bookmark);
    let page = api
        .get("/api/v1/bookmarks?limit=1", Some(&bob.token))
        .await
        .expect(200);
    assert_eq!(ids(&page.json()), [later_id.as_str()]);
    let next = page.link("next").expect("next");
    let rest = api.get(&next, Some(&bob.token)).await.expect(200).json();
    assert_eq!(ids(&rest), [id.as_str()]);
    let favourites = api
        .get("/api/v1/favourites", Some(&bob.token))
        .await
        .expect(200)
        .json();
    assert_eq!(ids(&favourites), [id.as_str()]);

    // The reblog is among bob's statuses, unless reblogs are excluded.
    let bobs = api
        .get(&format!("/api/v1/accounts/{}/statuses", bob.id), None)
        .await
        .expect(200)
        .json();
    assert_eq!(ids(&bobs), [reblog_id.as_str()]);
    assert_eq!(bobs[0]["reblog"]["id"], id.as_str());
    let bobs = api
        .get(
            &format!("/api/v1/accounts/{}/statuses?exclude_reblogs=true", bob.id),
            None,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(bobs, json!([]));

    // Undoing: flags and counts go back.
    let s = act(&bob, "unfavourite").await;
    assert_eq!(
        (&s["favourited"], &s["favourites_count"]),
        (&json!(false), &json!(1))
    );
    let s = act(&bob, "unbookmark").await;
    assert_eq!(s["bookmarked"], false);
    let s = act(&bob, "unreblog").await;
    assert_eq!(s["id"], id.as_str());
    assert_eq!(
        (&s["reblogged"], &s["reblogs_count"]),
        (&json!(false), &json!(0))
    );
    api.get(&format!("/api/v1/statuses/{reblog_id}"), None)
        .await
        .expect(404);
    // Undoing by the reblog's own id works too.
    let reblog = act(&bob, "reblog").await;
    let reblog_id = reblog["id"].as_str().unwrap().to_string();
    let s = api
        .post(
            &format!("/api/v1/statuses/{reblog_id}/unreblog"),
            Some(&bob.token),
            Body::None,
        )
        .await
        .expect(200)
        .json();
    assert_eq!((&s["id"], &s["reblogged"]), (&json!(id), &json!(false)));

    // Pins: one's own, not direct, at most five, listed with pinned=true.
    api.post(
        &format!("/api/v1/statuses/{id}/pin"),
        Some(&bob.token),
        Body::None,
    )
    .await
    .expect(422);
    let pinned = act(&alice, "pin").await;
    assert_eq!(pinned["pinned"], true);
    let direct = api
        .post_status(&alice, &[("status", "@bob psst"), ("visibility", "direct")])
        .await;
    api.post(
        &format!("/api/v1/statuses/{}/pin", direct["id"].as_str().unwrap()),
        Some(&alice.token),
        Body::None,
    )
    .await
    .expect(422);
    let mut pins = vec![id.clone()];
    for i in 0..4 {
        let s = api
            .post_status(&alice, &[("status", &format!("pin {i}"))])
            .await;
        let sid = s["id"].as_str().unwrap().to_string();
        api.post(
            &format!("/api/v1/statuses/{sid}/pin"),
            Some(&alice.token),
            Body::None,
        )
        .await
        .expect(200);
        pins.push(sid);
    }
    let sixth = api.post_status(&alice, &[("status", "one too many")]).await;
    let reply = api
        .post(
            &format!("/api/v1/statuses/{}/pin", sixth["id"].as_str().unwrap()),
            Some(&alice.token),
            Body::None,
        )
        .await
        .expect(422);
    assert!(reply.text().contains("maximum number"), "{}", reply.text());
    let listed = api
        .get(
            &format!("/api/v1/accounts/{}/statuses?pinned=true", alice.id),
            None,
        )
        .await
        .expect(200)
        .json();
    pins.reverse();
    assert_eq!(ids(&listed), pins);
    let s = act(&alice, "unpin").await;
    assert_eq!(s["pinned"], false);
}

#[tokio::test]
async fn an_idempotency_key_gives_back_the_first_status() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = |user: &User, key: &str, text: &str| {
        let token = user.token.clone();
        let key = key.to_string();
        let text = text.to_string();
        let api = &api;
        async move {
            api.call_with(
                "POST",
                "/api/v1/statuses",
                Some(&token),
                form(&[("status", &text)]),
                &[("Idempotency-Key", &key)],
            )
            .await
            .expect(200)
            .json()["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let key = format!("key-{}", std::process::id());
    let first = post(&alice, &key, "once").await;
    assert_eq!(post(&alice, &key, "once").await, first);
    // Even with another body: the key decides.
    assert_eq!(post(&alice, &key, "twice?").await, first);
    // Another user's key space is their own; another key is another status.
    assert_ne!(post(&bob, &key, "once").await, first);
    assert_ne!(post(&alice, &format!("{key}-2"), "once").await, first);

    // Concurrent retries with one key make one status.
    let concurrent_key = format!("{key}-concurrent");
    let results = futures_join_all((0..5).map(|_| post(&alice, &concurrent_key, "burst"))).await;
    assert!(results.iter().all(|id| *id == results[0]), "{results:?}");

    // A refused request does not hold the key: the corrected retry goes through.
    let retry_key = format!("{key}-retry");
    api.call_with(
        "POST",
        "/api/v1/statuses",
        Some(&alice.token),
        form(&[("status", "")]),
        &[("Idempotency-Key", &retry_key)],
    )
    .await
    .expect(422);
    let media = api.media(&bob).await;
    api.call_with(
        "POST",
        "/api/v1/statuses",
        Some(&alice.token),
        form(&[("status", "x"), ("media_ids[]", &media)]),
        &[("Idempotency-Key", &retry_key)],
    )
    .await
    .expect(422);
    let retried = post(&alice, &retry_key, "fixed").await;
    let s = api
        .get(&format!("/api/v1/statuses/{retried}"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(s["content"], "<p>fixed</p>");
    let mut conn = api.conn().await;
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM statuses WHERE account_id = $1")
        .bind(alice.id.parse::<i64>().unwrap())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 4);
}

/// Idempotency keys live in Redis: a cluster routes each key to its own shard.
#[tokio::test]
async fn idempotency_keys_work_on_a_redis_cluster_too() {
    let api = Api::start_cluster().await;
    let alice = api.user("alice").await;
    let post = |key: String| {
        let token = alice.token.clone();
        let api = &api;
        async move {
            api.call_with(
                "POST",
                "/api/v1/statuses",
                Some(&token),
                form(&[("status", "clustered")]),
                &[("Idempotency-Key", &key)],
            )
            .await
            .expect(200)
            .json()["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let run = std::process::id();
    let mut firsts = BTreeSet::new();
    // Enough keys to land on every shard.
    for i in 0..12 {
        let key = format!("cluster-{run}-{i}");
        let first = post(key.clone()).await;
        assert_eq!(post(key).await, first);
        firsts.insert(first);
    }
    assert_eq!(firsts.len(), 12);
    assert_eq!(api.count("statuses").await, 12);
}

async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::new();
    // Poll all at once: a join of boxed futures, without a futures dependency.
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = handles.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(done.into_iter().map(|v| v.unwrap()));
    out
}

#[tokio::test]
async fn limits_are_enforced_and_a_refused_post_stores_nothing() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let mine: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(api.media(&alice).await);
        }
        v
    };
    let bobs = api.media(&bob).await;

    let long = "a".repeat(501);
    let exact = "a".repeat(500);
    // A URL counts 23 characters, however long.
    let with_url = format!(
        "{} https://example.com/{}",
        "a".repeat(476),
        "p".repeat(300)
    );
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("status", &long)], "character limit of 500"),
        (
            vec![("status", &exact[..499]), ("spoiler_text", "cw")],
            "character limit",
        ),
        (vec![("status", "")], "can't be blank"),
        (
            vec![("status", "x"), ("visibility", "everyone")],
            "Visibility",
        ),
        (
            vec![
                ("status", "x"),
                ("media_ids[]", &mine[0]),
                ("media_ids[]", &mine[1]),
                ("media_ids[]", &mine[2]),
                ("media_ids[]", &mine[3]),
                ("media_ids[]", &mine[4]),
            ],
            "more than 4",
        ),
        (vec![("status", "x"), ("media_ids[]", &bobs)], "media_ids"),
        (vec![("status", "x"), ("media_ids[]", "12345")], "media_ids"),
        (
            vec![
                ("status", "x"),
                ("poll[options][]", "a"),
                ("poll[options][]", "b"),
            ],
            "Poll expires at can't be blank",
        ),
        (
            vec![("status", "x"), ("scheduled_at", "2099-01-01T00:00:00Z")],
            "not supported yet",
        ),
    ];
    for (pairs, message) in cases {
        let reply = api
            .post("/api/v1/statuses", Some(&alice.token), form(&pairs))
            .await
            .expect(422);
        assert!(
            reply.json()["error"].as_str().unwrap().contains(message),
            "{pairs:?}: {}",
            reply.text()
        );
    }
    api.post_status(&alice, &[("status", &exact)]).await;
    api.post_status(&alice, &[("status", &with_url)]).await;
    api.post(
        "/api/v1/statuses",
        Some(&alice.token),
        form(&[("status", &format!("a{with_url}"))]),
    )
    .await
    .expect(422);

    // Everything is written in one transaction: a bad attachment after good ones, with new
    // mentions and tags, leaves no status, mention, tag or attachment change behind.
    let before = (
        api.count("statuses").await,
        api.count("mentions").await,
        api.count("tags").await,
        api.count("statuses_tags").await,
    );
    api.post(
        "/api/v1/statuses",
        Some(&alice.token),
        form(&[
            ("status", "@bob #brandnew"),
            ("media_ids[]", &mine[0]),
            ("media_ids[]", &bobs),
        ]),
    )
    .await
    .expect(422);
    let after = (
        api.count("statuses").await,
        api.count("mentions").await,
        api.count("tags").await,
        api.count("statuses_tags").await,
    );
    assert_eq!(before, after);
    let mut conn = api.conn().await;
    let (attached,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM media_attachments WHERE status_id IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(attached, 0);

    // Own media attach, in the order given, and only once.
    let with_media = api
        .post_status(
            &alice,
            &[
                ("status", ""),
                ("media_ids[]", &mine[1]),
                ("media_ids[]", &mine[0]),
            ],
        )
        .await;
    let media_ids: Vec<&str> = with_media["media_attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(media_ids, [mine[1].as_str(), mine[0].as_str()]);
    assert_eq!(
        with_media["media_attachments"][0]["description"],
        "a test image"
    );
    api.post(
        "/api/v1/statuses",
        Some(&alice.token),
        form(&[("status", "again"), ("media_ids[]", &mine[0])]),
    )
    .await
    .expect(422);
    let only_media = api
        .get(
            &format!("/api/v1/accounts/{}/statuses?only_media=true", alice.id),
            None,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(ids(&only_media), [with_media["id"].as_str().unwrap()]);

    // Deleting keeps the media for a redraft.
    let wid = with_media["id"].as_str().unwrap();
    api.call(
        "DELETE",
        &format!("/api/v1/statuses/{wid}"),
        Some(&alice.token),
        Body::None,
    )
    .await
    .expect(200);
    api.post_status(&alice, &[("status", "redraft"), ("media_ids[]", &mine[0])])
        .await;
}

#[tokio::test]
async fn every_endpoint_refuses_a_token_without_its_scope() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let status = api.post_status(&alice, &[("status", "scoped")]).await;
    let id = status["id"].as_str().unwrap();
    let read_only = api.token_for(&alice, "read").await;
    let write_only = api.token_for(&alice, "write").await;
    let profile = api.token_for(&alice, "profile").await;

    let writes = [
        ("POST", "/api/v1/statuses".to_string()),
        ("PUT", format!("/api/v1/statuses/{id}")),
        ("DELETE", format!("/api/v1/statuses/{id}")),
        ("POST", format!("/api/v1/statuses/{id}/favourite")),
        ("POST", format!("/api/v1/statuses/{id}/unfavourite")),
        ("POST", format!("/api/v1/statuses/{id}/reblog")),
        ("POST", format!("/api/v1/statuses/{id}/unreblog")),
        ("POST", format!("/api/v1/statuses/{id}/bookmark")),
        ("POST", format!("/api/v1/statuses/{id}/unbookmark")),
        ("POST", format!("/api/v1/statuses/{id}/pin")),
        ("POST", format!("/api/v1/statuses/{id}/unpin")),
    ];
    for (method, path) in &writes {
        for token in [&read_only, &profile] {
            api.call(method, path, Some(token), form(&[("status", "nope")]))
                .await
                .expect(403);
        }
        api.call(method, path, None, Body::None).await.expect(401);
    }
    let reads = [
        format!("/api/v1/statuses/{id}"),
        format!("/api/v1/statuses/{id}/context"),
        format!("/api/v1/statuses/{id}/history"),
        format!("/api/v1/statuses/{id}/source"),
        format!("/api/v1/statuses/{id}/favourited_by"),
        format!("/api/v1/statuses/{id}/reblogged_by"),
        "/api/v1/favourites".to_string(),
        "/api/v1/bookmarks".to_string(),
        format!("/api/v1/accounts/{}/statuses", alice.id),
    ];
    for path in &reads {
        api.get(path, Some(&write_only)).await.expect(403);
        api.get(path, Some(&read_only)).await.expect(200);
    }
    // Granular scopes are enough.
    let granular = api.token_for(&alice, "write:statuses").await;
    api.post(
        "/api/v1/statuses",
        Some(&granular),
        form(&[("status", "ok")]),
    )
    .await
    .expect(200);
    api.post(
        &format!("/api/v1/statuses/{id}/favourite"),
        Some(&granular),
        Body::None,
    )
    .await
    .expect(403);
    assert_eq!(api.count("statuses").await, 2);
}
