//! Lists, markers and preferences over HTTP against the real server, PostgreSQL and Redis:
//! list CRUD and membership (only followed accounts), the list timeline's content and
//! pagination, other users' lists, scopes; markers' round trip and versions; preferences.

mod common;

use common::*;
use serde_json::{Value, json};

type Api = TestApi;

struct User {
    id: String,
    token: String,
}

impl Api {
    async fn get(&self, path: &str, user: &User) -> Reply {
        self.call("GET", path, Some(&user.token), Body::None).await
    }

    async fn form(&self, method: &str, path: &str, user: &User, pairs: &[(&str, &str)]) -> Reply {
        self.call(method, path, Some(&user.token), Body::Form(pairs))
            .await
    }

    async fn user_with(&self, username: &str, scopes: &str) -> User {
        let (account_id, user_id) = create_user(&self.db, username, "a long password 123").await;
        User {
            id: account_id.to_string(),
            token: issue_token(&self.db, Some(user_id), scopes).await,
        }
    }

    async fn user(&self, username: &str) -> User {
        self.user_with(username, "read write follow").await
    }

    async fn post_status(&self, user: &User, text: &str) -> String {
        let s = self
            .form("POST", "/api/v1/statuses", user, &[("status", text)])
            .await
            .expect(200)
            .json();
        s["id"].as_str().unwrap().to_string()
    }

    async fn follow(&self, user: &User, target: &User) {
        self.form(
            "POST",
            &format!("/api/v1/accounts/{}/follow", target.id),
            user,
            &[],
        )
        .await
        .expect(200);
    }

    async fn create_list(&self, user: &User, title: &str) -> String {
        let list = self
            .form("POST", "/api/v1/lists", user, &[("title", title)])
            .await
            .expect(200)
            .json();
        list["id"].as_str().unwrap().to_string()
    }
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn lists_are_created_read_updated_and_deleted_by_their_owner_only() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let created = api
        .call(
            "POST",
            "/api/v1/lists",
            Some(&alice.token),
            Body::Json(
                json!({"title": "Friends", "replies_policy": "followed", "exclusive": true}),
            ),
        )
        .await
        .expect(200)
        .json();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        created,
        json!({"id": id, "title": "Friends", "replies_policy": "followed", "exclusive": true})
    );
    let other = api.create_list(&alice, "Work").await;
    let lists = api.get("/api/v1/lists", &alice).await.expect(200).json();
    assert_eq!(ids(&lists), [id.clone(), other.clone()]);
    assert_eq!(lists[1]["replies_policy"], "list");
    assert_eq!(lists[1]["exclusive"], false);

    let path = format!("/api/v1/lists/{id}");
    let updated = api
        .form(
            "PUT",
            &path,
            &alice,
            &[("title", "Close friends"), ("exclusive", "false")],
        )
        .await
        .expect(200)
        .json();
    assert_eq!(updated["title"], "Close friends");
    assert_eq!(updated["replies_policy"], "followed");
    assert_eq!(updated["exclusive"], false);
    assert_eq!(api.get(&path, &alice).await.expect(200).json(), updated);

    for bad in [
        vec![("title", "")],
        vec![("title", &*"x".repeat(101))],
        vec![("title", "ok"), ("replies_policy", "everyone")],
    ] {
        api.form("POST", "/api/v1/lists", &alice, &bad)
            .await
            .expect(422);
    }
    api.form("PUT", &path, &alice, &[("replies_policy", "all")])
        .await
        .expect(422);

    // Another user's list does not exist for them, whatever they try.
    api.get(&path, &bob).await.expect(404);
    api.form("PUT", &path, &bob, &[("title", "mine")])
        .await
        .expect(404);
    api.form("DELETE", &path, &bob, &[]).await.expect(404);
    api.get(&format!("{path}/accounts"), &bob).await.expect(404);
    api.form(
        "POST",
        &format!("{path}/accounts"),
        &bob,
        &[("account_ids[]", &alice.id)],
    )
    .await
    .expect(404);
    api.get(&format!("/api/v1/timelines/list/{id}"), &bob)
        .await
        .expect(404);
    assert_eq!(
        ids(&api.get("/api/v1/lists", &bob).await.expect(200).json()),
        Vec::<String>::new()
    );
    api.get("/api/v1/lists/nonsense", &alice).await.expect(404);

    assert_eq!(
        api.form("DELETE", &path, &alice, &[])
            .await
            .expect(200)
            .json(),
        json!({})
    );
    api.get(&path, &alice).await.expect(404);
    assert_eq!(
        ids(&api.get("/api/v1/lists", &alice).await.expect(200).json()),
        [other]
    );
}

#[tokio::test]
async fn only_followed_accounts_join_a_list_and_unfollowing_removes_them() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let dave = api.user("dave").await;
    api.follow(&alice, &bob).await;
    api.follow(&alice, &carol).await;
    let list = api.create_list(&alice, "People").await;
    let members = format!("/api/v1/lists/{list}/accounts");

    let refused = api
        .form(
            "POST",
            &members,
            &alice,
            &[("account_ids[]", &bob.id), ("account_ids[]", &dave.id)],
        )
        .await
        .expect(422)
        .json();
    assert!(
        refused["error"].as_str().unwrap().contains("follow"),
        "{refused}"
    );
    // All or nothing: bob was not added either.
    assert_eq!(
        ids(&api.get(&members, &alice).await.expect(200).json()),
        Vec::<String>::new()
    );
    api.form("POST", &members, &alice, &[("account_ids[]", "999999999")])
        .await
        .expect(404);

    api.call(
        "POST",
        &members,
        Some(&alice.token),
        Body::Json(json!({"account_ids": [bob.id, carol.id]})),
    )
    .await
    .expect(200);
    // Adding again changes nothing.
    api.form("POST", &members, &alice, &[("account_ids[]", &bob.id)])
        .await
        .expect(200);

    let page = api
        .get(&format!("{members}?limit=1"), &alice)
        .await
        .expect(200);
    assert_eq!(ids(&page.json()), [carol.id.as_str()]);
    let next = page.link("next").expect("a next link");
    assert_eq!(
        ids(&api.get(&next, &alice).await.expect(200).json()),
        [bob.id.as_str()]
    );

    let of_bob = format!("/api/v1/accounts/{}/lists", bob.id);
    assert_eq!(
        ids(&api.get(&of_bob, &alice).await.expect(200).json()),
        [list.as_str()]
    );
    assert_eq!(
        ids(&api.get(&of_bob, &dave).await.expect(200).json()),
        Vec::<String>::new()
    );
    api.get("/api/v1/accounts/999999999/lists", &alice)
        .await
        .expect(404);

    api.form("DELETE", &members, &alice, &[("account_ids[]", &carol.id)])
        .await
        .expect(200);
    assert_eq!(
        ids(&api.get(&members, &alice).await.expect(200).json()),
        [bob.id.as_str()]
    );

    api.form(
        "POST",
        &format!("/api/v1/accounts/{}/unfollow", bob.id),
        &alice,
        &[],
    )
    .await
    .expect(200);
    assert_eq!(
        ids(&api.get(&members, &alice).await.expect(200).json()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&api.get(&of_bob, &alice).await.expect(200).json()),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn the_list_timeline_shows_its_members_newest_first_in_pages() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let dave = api.user("dave").await;
    api.follow(&alice, &bob).await;
    api.follow(&alice, &carol).await;
    api.follow(&alice, &dave).await;
    let list = api.create_list(&alice, "Some").await;
    api.form(
        "POST",
        &format!("/api/v1/lists/{list}/accounts"),
        &alice,
        &[("account_ids[]", &bob.id), ("account_ids[]", &carol.id)],
    )
    .await
    .expect(200);

    let mut wanted = Vec::new();
    for i in 0..5 {
        wanted.push(api.post_status(&bob, &format!("bob {i}")).await);
        api.post_status(&dave, &format!("dave {i}")).await;
        wanted.push(api.post_status(&carol, &format!("carol {i}")).await);
    }
    // Private statuses of a followed member show; direct ones not addressed to alice don't.
    let private = api
        .form(
            "POST",
            "/api/v1/statuses",
            &bob,
            &[("status", "followers"), ("visibility", "private")],
        )
        .await
        .expect(200)
        .json();
    wanted.push(private["id"].as_str().unwrap().to_string());
    api.form(
        "POST",
        "/api/v1/statuses",
        &bob,
        &[("status", "secret"), ("visibility", "direct")],
    )
    .await
    .expect(200);
    wanted.reverse();

    let timeline = format!("/api/v1/timelines/list/{list}");
    let all = api.get(&timeline, &alice).await.expect(200).json();
    assert_eq!(ids(&all), wanted);
    assert_eq!(all[0]["content"], "<p>followers</p>");

    let mut seen = Vec::new();
    let mut url = format!("{timeline}?limit=4");
    loop {
        let reply = api.get(&url, &alice).await.expect(200);
        let page = ids(&reply.json());
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 4);
        seen.extend(page);
        url = reply.link("next").expect("a next link");
        assert!(seen.len() <= wanted.len(), "paging does not end");
    }
    assert_eq!(seen, wanted);

    let newer = api
        .get(&format!("{timeline}?min_id={}&limit=2", wanted[5]), &alice)
        .await
        .expect(200)
        .json();
    assert_eq!(ids(&newer), wanted[3..5]);
    let since = api
        .get(
            &format!("{timeline}?since_id={}&limit=2", wanted[5]),
            &alice,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(ids(&since), wanted[0..2]);
}

#[tokio::test]
async fn lists_need_a_user_token_with_the_lists_scopes() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let list = api.create_list(&alice, "Mine").await;
    let (_, alice_user) = {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&api.db)
            .await
            .unwrap();
        sqlx::query_as::<_, (i64, i64)>("SELECT account_id, id FROM users WHERE account_id = $1")
            .bind(alice.id.parse::<i64>().unwrap())
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    let read_only = User {
        id: alice.id.clone(),
        token: issue_token(&api.db, Some(alice_user), "read:lists").await,
    };
    let statuses_only = User {
        id: alice.id.clone(),
        token: issue_token(&api.db, Some(alice_user), "read:statuses write:statuses").await,
    };
    let path = format!("/api/v1/lists/{list}");

    for p in ["/api/v1/lists", path.as_str(), "/api/v1/timelines/list/1"] {
        api.call("GET", p, None, Body::None).await.expect(401);
        api.call("GET", p, Some("not-a-token"), Body::None)
            .await
            .expect(401);
        api.get(p, &statuses_only).await.expect(403);
    }
    api.get(&path, &read_only).await.expect(200);
    api.get(&format!("/api/v1/timelines/list/{list}"), &read_only)
        .await
        .expect(200);
    api.form("POST", "/api/v1/lists", &read_only, &[("title", "x")])
        .await
        .expect(403);
    api.form("PUT", &path, &read_only, &[("title", "x")])
        .await
        .expect(403);
    api.form("DELETE", &path, &read_only, &[]).await.expect(403);
    api.form("POST", &format!("{path}/accounts"), &read_only, &[])
        .await
        .expect(403);
    api.call("POST", "/api/v1/lists", None, Body::Form(&[("title", "x")]))
        .await
        .expect(401);
    // An application's own token is no user.
    let app = issue_token(&api.db, None, "read write").await;
    api.call("GET", "/api/v1/lists", Some(&app), Body::None)
        .await
        .expect(422);
}

#[tokio::test]
async fn markers_round_trip_and_count_their_moves() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let get = "/api/v1/markers?timeline[]=home&timeline[]=notifications";
    assert_eq!(api.get(get, &alice).await.expect(200).json(), json!({}));

    let first = api
        .form(
            "POST",
            "/api/v1/markers",
            &alice,
            &[("home[last_read_id]", "100")],
        )
        .await
        .expect(200)
        .json();
    assert_eq!(first["home"]["last_read_id"], "100");
    assert_eq!(first["home"]["version"], 0);
    assert!(first["home"]["updated_at"].as_str().unwrap().ends_with('Z'));
    assert!(first.get("notifications").is_none());

    let second = api
        .call(
            "POST",
            "/api/v1/markers",
            Some(&alice.token),
            Body::Json(json!({
                "home": {"last_read_id": "105"},
                "notifications": {"last_read_id": "7"},
            })),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(second["home"]["last_read_id"], "105");
    assert_eq!(second["home"]["version"], 1);
    assert_eq!(second["notifications"]["last_read_id"], "7");
    assert_eq!(second["notifications"]["version"], 0);

    // The same position again is no move.
    let same = api
        .form(
            "POST",
            "/api/v1/markers",
            &alice,
            &[("home[last_read_id]", "105")],
        )
        .await
        .expect(200)
        .json();
    assert_eq!(same["home"]["version"], 1);
    api.form(
        "POST",
        "/api/v1/markers",
        &alice,
        &[("home[last_read_id]", "110")],
    )
    .await
    .expect(200);

    let read = api.get(get, &alice).await.expect(200).json();
    assert_eq!(read["home"]["last_read_id"], "110");
    assert_eq!(read["home"]["version"], 2);
    assert_eq!(read["notifications"]["last_read_id"], "7");
    let home_only = api
        .get("/api/v1/markers?timeline[]=home", &alice)
        .await
        .expect(200)
        .json();
    assert_eq!(home_only.as_object().unwrap().len(), 1);
    assert_eq!(api.get(get, &bob).await.expect(200).json(), json!({}));

    api.form(
        "POST",
        "/api/v1/markers",
        &alice,
        &[("home[last_read_id]", "x")],
    )
    .await
    .expect(422);
    let read_only = api.user_with("carol", "read").await;
    api.form(
        "POST",
        "/api/v1/markers",
        &read_only,
        &[("home[last_read_id]", "1")],
    )
    .await
    .expect(403);
    let no_statuses = api.user_with("dave", "read:lists").await;
    api.get(get, &no_statuses).await.expect(403);
    api.call("GET", get, None, Body::None).await.expect(401);
}

#[tokio::test]
async fn preferences_show_the_posting_defaults() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let prefs = api
        .get("/api/v1/preferences", &alice)
        .await
        .expect(200)
        .json();
    assert_eq!(
        prefs,
        json!({
            "posting:default:visibility": "public",
            "posting:default:sensitive": false,
            "posting:default:language": null,
            "reading:expand:media": "default",
            "reading:expand:spoilers": false,
        })
    );
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&api.db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE users SET default_privacy = 'private', default_sensitive = true, \
         default_language = 'de' WHERE account_id = $1",
    )
    .bind(alice.id.parse::<i64>().unwrap())
    .execute(&mut conn)
    .await
    .unwrap();
    let prefs = api
        .get("/api/v1/preferences", &alice)
        .await
        .expect(200)
        .json();
    assert_eq!(prefs["posting:default:visibility"], "private");
    assert_eq!(prefs["posting:default:sensitive"], true);
    assert_eq!(prefs["posting:default:language"], "de");

    let no_accounts = api.user_with("bob", "read:statuses").await;
    api.get("/api/v1/preferences", &no_accounts)
        .await
        .expect(403);
    api.call("GET", "/api/v1/preferences", None, Body::None)
        .await
        .expect(401);
}
