//! `/api/v2/search` and `/api/v1/tags/:name` over HTTP against the real server and
//! PostgreSQL: full-text search of statuses within what the viewer may see, operators,
//! pagination, accounts and hashtags by prefix, local resolution of the instance's URLs, and
//! the error answers.

mod common;

use common::*;
use serde_json::{Value, json};

type Api = TestApi;

impl Api {
    async fn user(&self, name: &str) -> User {
        let (account, user) = create_user(&self.db, name, "pw-search-1").await;
        User {
            id: account.to_string(),
            token: issue_token(&self.db, Some(user), "read write follow").await,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call("GET", path, token, Body::None).await
    }

    async fn post(&self, path: &str, user: &User, pairs: &[(&str, &str)]) -> Value {
        self.call("POST", path, Some(&user.token), Body::Form(pairs))
            .await
            .expect(200)
            .json()
    }

    async fn post_status(&self, user: &User, text: &str, visibility: &str) -> String {
        let status = self
            .post(
                "/api/v1/statuses",
                user,
                &[("status", text), ("visibility", visibility)],
            )
            .await;
        status["id"].as_str().unwrap().to_string()
    }

    async fn search(&self, user: Option<&User>, query: &[(&str, &str)]) -> Value {
        let qs = serde_urlencoded::to_string(query).unwrap();
        self.get(
            &format!("/api/v2/search?{qs}"),
            user.map(|u| u.token.as_str()),
        )
        .await
        .expect(200)
        .json()
    }

    /// The ids of the statuses a search finds.
    async fn statuses(&self, user: &User, q: &str, extra: &[(&str, &str)]) -> Vec<String> {
        let mut query = vec![("q", q), ("type", "statuses")];
        query.extend_from_slice(extra);
        ids(&self.search(Some(user), &query).await["statuses"])
    }
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn statuses_are_found_by_their_words_within_what_the_viewer_may_see() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;

    let public = api
        .post_status(&bob, "Penguins waddle across the Ice", "public")
        .await;
    let unlisted = api
        .post_status(&bob, "penguins in an unlisted post", "unlisted")
        .await;
    let private = api
        .post_status(&bob, "penguins for followers only", "private")
        .await;
    let direct = api
        .post_status(&bob, "@alice penguins just for you", "direct")
        .await;
    let own_private = api
        .post_status(&alice, "my own penguins diary", "private")
        .await;
    let other_words = api.post_status(&bob, "walruses instead", "public").await;
    let spoiler = api
        .post(
            "/api/v1/statuses",
            &carol,
            &[
                ("status", "hidden text"),
                ("spoiler_text", "Penguin spoilers"),
            ],
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Alice: public ones, her own, and the direct one that mentions her; neither the
    // unlisted one nor the followers-only one (she does not follow Bob and did nothing with
    // them). Newest first; case does not matter.
    let found = api.statuses(&alice, "PENGUINS", &[]).await;
    assert_eq!(found, [own_private.clone(), direct.clone(), public.clone()]);
    // `simple`: no stemming, so "penguin" is another word than "penguins".
    assert_eq!(
        api.statuses(&alice, "penguin", &[]).await,
        [spoiler.as_str()]
    );
    // Phrases and exclusions (websearch syntax).
    assert_eq!(
        api.statuses(&alice, "\"waddle across\"", &[]).await,
        [public.as_str()]
    );
    assert_eq!(
        api.statuses(&alice, "penguins -diary", &[]).await,
        [direct.clone(), public.clone()]
    );
    assert!(!found.contains(&other_words));

    // Following Bob makes the followers-only status visible, but searching it takes an
    // interaction; favouriting the unlisted one brings it in too.
    api.post(&format!("/api/v1/accounts/{}/follow", bob.id), &alice, &[])
        .await;
    assert!(
        !api.statuses(&alice, "penguins", &[])
            .await
            .contains(&private)
    );
    api.post(&format!("/api/v1/statuses/{private}/bookmark"), &alice, &[])
        .await;
    api.post(
        &format!("/api/v1/statuses/{unlisted}/favourite"),
        &alice,
        &[],
    )
    .await;
    let found = api.statuses(&alice, "penguins", &[]).await;
    assert_eq!(
        found,
        [
            own_private.clone(),
            direct.clone(),
            private.clone(),
            unlisted.clone(),
            public.clone()
        ]
    );

    // Carol sees only the public one; anonymous callers get no statuses at all.
    assert_eq!(
        api.statuses(&carol, "penguins", &[]).await,
        [public.as_str()]
    );
    let anonymous = api
        .search(None, &[("q", "penguins"), ("type", "statuses")])
        .await;
    assert_eq!(anonymous["statuses"], json!([]));

    // Operators.
    assert_eq!(
        api.statuses(&alice, "penguins from:alice", &[]).await,
        [own_private.as_str()]
    );
    assert_eq!(
        api.statuses(&alice, "penguins from:me", &[]).await,
        [own_private.as_str()]
    );
    assert_eq!(
        api.statuses(&alice, "penguins in:library", &[]).await,
        [
            own_private.clone(),
            direct.clone(),
            private.clone(),
            unlisted.clone()
        ]
    );
    assert_eq!(
        api.statuses(&alice, "penguins in:public", &[]).await,
        [public.as_str()]
    );
    assert_eq!(
        api.statuses(&alice, "penguins from:nobody", &[]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        api.statuses(&alice, "penguins has:media", &[]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        api.statuses(&alice, "penguins -has:media", &[]).await.len(),
        5
    );
    assert_eq!(
        api.statuses(&alice, "is:sensitive", &[]).await,
        [spoiler.as_str()],
        "a content warning makes a status sensitive"
    );

    // account_id, pagination by id and by offset.
    assert_eq!(
        api.statuses(&alice, "penguins", &[("account_id", &bob.id)])
            .await,
        [
            direct.clone(),
            private.clone(),
            unlisted.clone(),
            public.clone()
        ]
    );
    assert_eq!(
        api.statuses(&alice, "penguins", &[("max_id", &private), ("limit", "1")])
            .await,
        [unlisted.as_str()]
    );
    assert_eq!(
        api.statuses(&alice, "penguins", &[("min_id", &private)])
            .await,
        [own_private.clone(), direct.clone()]
    );
    assert_eq!(
        api.statuses(&alice, "penguins", &[("offset", "3"), ("limit", "1")])
            .await,
        [unlisted.as_str()]
    );

    // A block hides the author's statuses from the search.
    api.post(&format!("/api/v1/accounts/{}/block", bob.id), &carol, &[])
        .await;
    assert_eq!(
        api.statuses(&carol, "penguins", &[]).await,
        Vec::<String>::new()
    );
    // Results are full Status entities as the viewer sees them.
    let result = api
        .search(Some(&alice), &[("q", "waddle"), ("type", "statuses")])
        .await;
    assert_eq!(result["statuses"][0]["account"]["username"], "bob");
    assert_eq!(result["statuses"][0]["favourited"], false);
    assert_eq!(result["accounts"], json!([]));
    assert_eq!(result["hashtags"], json!([]));
}

#[tokio::test]
async fn accounts_and_hashtags_are_found_by_prefix() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let ivy = api.user("ivy").await;
    api.user("ivan").await;
    api.user("zed").await;
    api.post_status(&ivy, "#Ivory and #ivy and #rustlang", "public")
        .await;
    api.post_status(&ivy, "more #rustlang", "unlisted").await;

    // Everything at once (no type): accounts, hashtags, and statuses for signed-in users.
    let all = api.search(Some(&alice), &[("q", "iv")]).await;
    assert_eq!(names(&all["accounts"], "username"), ["ivy", "ivan"]);
    assert_eq!(names(&all["hashtags"], "name"), ["ivy", "Ivory"]);
    assert_eq!(all["statuses"], json!([]), "no word is \"iv\"");

    // `#` searches hashtags only; `@` accounts only.
    let tags = api.search(Some(&alice), &[("q", "#rust")]).await;
    assert_eq!(names(&tags["hashtags"], "name"), ["rustlang"]);
    assert_eq!(tags["accounts"], json!([]));
    let tag = &tags["hashtags"][0];
    assert_eq!(tag["url"], "https://test.example/tags/rustlang");
    let history = tag["history"].as_array().unwrap();
    assert_eq!(history.len(), 7);
    // Today: one public use by one account (the unlisted one is not counted).
    assert_eq!(history[0]["uses"], "1");
    assert_eq!(history[0]["accounts"], "1");
    assert_eq!(history[1]["uses"], "0");
    let today: i64 = history[0]["day"].as_str().unwrap().parse().unwrap();
    assert_eq!(today % 86_400, 0);
    let yesterday: i64 = history[1]["day"].as_str().unwrap().parse().unwrap();
    assert_eq!(today - yesterday, 86_400);

    let people = api
        .search(Some(&alice), &[("q", "@ivy@test.example")])
        .await;
    assert_eq!(names(&people["accounts"], "username"), ["ivy"]);
    assert_eq!(people["hashtags"], json!([]));
    assert_eq!(
        api.search(Some(&alice), &[("q", "ivy@elsewhere.example")])
            .await["accounts"],
        json!([])
    );

    // Paging one kind; anonymous callers may search accounts and hashtags.
    let second = api
        .search(
            Some(&alice),
            &[
                ("q", "iv"),
                ("type", "accounts"),
                ("limit", "1"),
                ("offset", "1"),
            ],
        )
        .await;
    assert_eq!(names(&second["accounts"], "username"), ["ivan"]);
    assert_eq!(second["hashtags"], json!([]));
    let anonymous = api.search(None, &[("q", "iv")]).await;
    assert_eq!(names(&anonymous["accounts"], "username"), ["ivy", "ivan"]);
    assert_eq!(names(&anonymous["hashtags"], "name"), ["ivy", "Ivory"]);
    // Mastodon.py sends exclude_unreviewed=true: tags are not reviewed here, all count.
    let reviewed = api
        .search(None, &[("q", "ivo"), ("exclude_unreviewed", "true")])
        .await;
    assert_eq!(names(&reviewed["hashtags"], "name"), ["Ivory"]);
    // following=true: only accounts Alice follows.
    api.post(&format!("/api/v1/accounts/{}/follow", ivy.id), &alice, &[])
        .await;
    let followed = api
        .search(Some(&alice), &[("q", "iv"), ("following", "true")])
        .await;
    assert_eq!(names(&followed["accounts"], "username"), ["ivy"]);

    // GET /api/v1/tags/:name, any case, with or without the #.
    let tag = api
        .get("/api/v1/tags/RUSTLANG", None)
        .await
        .expect(200)
        .json();
    assert_eq!(tag["name"], "rustlang");
    assert_eq!(tag["history"].as_array().unwrap().len(), 7);
    api.get("/api/v1/tags/nosuchtag", None).await.expect(404);
}

#[tokio::test]
async fn resolve_finds_the_instance_own_urls() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let public = api.post_status(&bob, "hello from bob", "public").await;
    let private = api.post_status(&bob, "bob's secret", "private").await;

    let resolve = |q: String| {
        let api = &api;
        let alice = alice.clone();
        async move {
            api.search(Some(&alice), &[("q", q.as_str()), ("resolve", "true")])
                .await
        }
    };
    for url in [
        "https://test.example/@bob".to_string(),
        "https://test.example/users/bob".to_string(),
    ] {
        let found = resolve(url).await;
        assert_eq!(names(&found["accounts"], "username"), ["bob"]);
        assert_eq!(found["statuses"], json!([]));
    }
    for url in [
        format!("https://test.example/@bob/{public}"),
        format!("https://test.example/users/bob/statuses/{public}"),
    ] {
        let found = resolve(url).await;
        assert_eq!(ids(&found["statuses"]), [public.as_str()]);
        assert_eq!(found["accounts"], json!([]));
    }
    // What Alice may not see, a wrong author, other hosts: nothing.
    for url in [
        format!("https://test.example/@bob/{private}"),
        format!("https://test.example/@alice/{public}"),
        format!("https://elsewhere.example/@bob/{public}"),
        "https://test.example/@nobody".to_string(),
    ] {
        let found = resolve(url.clone()).await;
        assert_eq!(
            found,
            json!({"accounts": [], "statuses": [], "hashtags": []}),
            "{url}"
        );
    }
}

#[tokio::test]
async fn bad_searches_get_mastodon_errors() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let (_, user) = create_user(&api.db, "writer", "pw-writer-1").await;
    let writer = issue_token(&api.db, Some(user), "write").await;
    let scoped = issue_token(&api.db, Some(user), "read:search").await;

    let error = |reply: Reply| reply.json()["error"].as_str().unwrap().to_string();
    assert_eq!(
        error(
            api.get("/api/v2/search", Some(&alice.token))
                .await
                .expect(400)
        ),
        "param is missing or the value is empty: q"
    );
    api.get("/api/v2/search?q=%20", Some(&alice.token))
        .await
        .expect(400);
    assert_eq!(
        error(
            api.get("/api/v2/search?q=a&limit=-1", Some(&alice.token))
                .await
                .expect(400)
        ),
        "Pagination values for `offset` and `limit` must be positive"
    );
    api.get("/api/v2/search?q=a&type=posts", Some(&alice.token))
        .await
        .refused("type");
    api.get(
        "/api/v2/search?q=a&max_id=x&type=statuses",
        Some(&alice.token),
    )
    .await
    .refused("max_id");
    api.get(
        &format!("/api/v2/search?q={}", "a".repeat(501)),
        Some(&alice.token),
    )
    .await
    .refused("too long");
    assert_eq!(
        error(
            api.get("/api/v2/search?q=a&offset=1", None)
                .await
                .expect(401)
        ),
        "Search queries pagination is not supported without authentication"
    );
    assert_eq!(
        error(
            api.get("/api/v2/search?q=a&resolve=true", None)
                .await
                .expect(401)
        ),
        "Search queries that resolve remote resources are not supported without authentication"
    );
    api.get("/api/v2/search?q=a", Some(&writer))
        .await
        .expect(403);
    api.get("/api/v2/search?q=a", Some(&scoped))
        .await
        .expect(200);
    api.get("/api/v2/search?q=a", Some("not-a-token"))
        .await
        .expect(401);
    // limit=0 answers nothing; a limit above 40 is clamped.
    let empty = api
        .get("/api/v2/search?q=alice&limit=0", Some(&alice.token))
        .await
        .expect(200)
        .json();
    assert_eq!(
        empty,
        json!({"accounts": [], "statuses": [], "hashtags": []})
    );
    // /api/v1/search is gone in Mastodon 4.
    api.get("/api/v1/search?q=alice", Some(&alice.token))
        .await
        .expect(404);
}

/// The full-text query goes through the GIN index (the function the query calls must
/// inline to the index's expression), as do the prefix searches.
#[tokio::test]
async fn searches_use_their_indexes() {
    let db = migrated_database().await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    // Enough statuses for an index to beat a scan, with statistics.
    sqlx::query(
        "WITH a AS (INSERT INTO accounts (username) VALUES ('filler') RETURNING id) \
         INSERT INTO statuses (account_id, text) \
         SELECT a.id, 'filler number ' || i FROM a, generate_series(1, 5000) AS i",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
    let statuses = plan(
        &mut conn,
        "SELECT id FROM statuses s WHERE s.reblog_of_id IS NULL \
         AND status_search_document(s.spoiler_text, s.text, s.content_html) \
             @@ websearch_to_tsquery('simple', 'penguins')",
    )
    .await;
    assert!(statuses.contains("statuses_search"), "{statuses}");
    // The tables of accounts and tags are tiny here: only an index can show up.
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .unwrap();
    let tags = plan(
        &mut conn,
        "SELECT id FROM tags WHERE lower(name) LIKE 'rus%'",
    )
    .await;
    assert!(tags.contains("tags_name_prefix"), "{tags}");
    let accounts = plan(
        &mut conn,
        "SELECT id FROM accounts WHERE lower(username) LIKE 'iv%'",
    )
    .await;
    assert!(accounts.contains("accounts_username_prefix"), "{accounts}");
}

/// The plan PostgreSQL chooses for `sql`, one line after another.
async fn plan(conn: &mut sqlx::PgConnection, sql: &str) -> String {
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
        .fetch_all(conn)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn hashtags_are_followed_and_listed() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let reader = {
        let (_, user) = create_user(&api.db, "reader", "pw-reader-1").await;
        issue_token(&api.db, Some(user), "read").await
    };

    // Following a tag nobody used yet creates it, as written.
    let rust = api.post("/api/v1/tags/Rust/follow", &alice, &[]).await;
    assert_eq!(rust["name"], "Rust");
    assert_eq!(rust["following"], true);
    assert_eq!(rust["history"].as_array().unwrap().len(), 7);
    // Again, in another case and with the `#`: the same tag, still followed once.
    let again = api.post("/api/v1/tags/%23RUST/follow", &alice, &[]).await;
    assert_eq!((&again["id"], &again["name"]), (&rust["id"], &rust["name"]));
    api.post("/api/v1/tags/cats/follow", &alice, &[]).await;
    api.post("/api/v1/tags/dogs/follow", &alice, &[]).await;
    api.post("/api/v1/tags/cats/follow", &bob, &[]).await;

    // The tag as each caller sees it.
    let seen = api
        .get("/api/v1/tags/rust", Some(&alice.token))
        .await
        .expect(200)
        .json();
    assert_eq!(seen["following"], true);
    let seen = api
        .get("/api/v1/tags/rust", Some(&bob.token))
        .await
        .expect(200)
        .json();
    assert_eq!(seen["following"], false);
    let anonymous = api.get("/api/v1/tags/rust", None).await.expect(200).json();
    assert!(anonymous.get("following").is_none(), "{anonymous}");
    let found = api.search(Some(&alice), &[("q", "#ca")]).await;
    assert_eq!(found["hashtags"][0]["following"], true);
    let found = api.search(None, &[("q", "#ca")]).await;
    assert!(found["hashtags"][0].get("following").is_none());

    // Newest follow first, paged with Link headers.
    let page = api
        .get("/api/v1/followed_tags?limit=2", Some(&alice.token))
        .await
        .expect(200);
    assert_eq!(names(&page.json(), "name"), ["dogs", "cats"]);
    let next = page.link("next").expect("a next page");
    let rest = api
        .get(&next[next.find("/api/").unwrap()..], Some(&alice.token))
        .await
        .expect(200);
    assert_eq!(names(&rest.json(), "name"), ["Rust"]);
    assert!(rest.json()[0]["following"].as_bool().unwrap());

    let cats = api.post("/api/v1/tags/cats/unfollow", &alice, &[]).await;
    assert_eq!(cats["following"], false);
    let all = api
        .get("/api/v1/followed_tags", Some(&alice.token))
        .await
        .expect(200)
        .json();
    assert_eq!(names(&all, "name"), ["dogs", "Rust"]);
    // Bob's follow is his own.
    let bobs = api
        .get("/api/v1/followed_tags", Some(&bob.token))
        .await
        .expect(200)
        .json();
    assert_eq!(names(&bobs, "name"), ["cats"]);

    // Errors: unknown tag, names no status could tag, scopes, no token.
    let post = |path: &'static str, token: String| {
        let api = &api;
        async move { api.call("POST", path, Some(&token), Body::None).await }
    };
    post("/api/v1/tags/nosuchtag/unfollow", alice.token.clone())
        .await
        .expect(404);
    post("/api/v1/tags/two%20words/follow", alice.token.clone())
        .await
        .refused("name");
    post("/api/v1/tags/2024/follow", alice.token.clone())
        .await
        .refused("name");
    post("/api/v1/tags/rust/follow", reader.clone())
        .await
        .expect(403);
    api.get("/api/v1/followed_tags", None).await.expect(401);
    let app_token = issue_token(&api.db, None, "read write follow").await;
    post("/api/v1/tags/rust/follow", app_token)
        .await
        .expect(422);
}
