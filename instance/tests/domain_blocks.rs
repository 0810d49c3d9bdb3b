//! A user's domain blocks over HTTP against the real server, PostgreSQL, Redis and a
//! `fedi-server worker`: the list with its paging, normalization and refusals, scopes,
//! `Relationship.domain_blocking`, and what a block hides (public and hashtag timelines,
//! boosts in home feeds both at fan-out and on reading, notifications unless the sender is
//! followed) and removes (followers on that domain). Remote accounts and their statuses are
//! inserted as rows, as federation would store them.

mod common;

use std::time::Duration;

use common::*;
use reqwest::header;
use serde_json::{Value, json};

struct Api {
    server: Server,
    _worker: Server,
    db: String,
    http: reqwest::Client,
    /// The instance's Redis names (feeds are read directly below).
    keys: fedi_server::redis_keys::Namespace,
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
            server,
            _worker: worker,
            db,
            http: reqwest::Client::new(),
            keys: fedi_server::redis_keys::Namespace::new(&domain),
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
        form: &[(&str, &str)],
    ) -> Reply {
        let path = match path.find("/api/") {
            Some(i) => &path[i..],
            None => path,
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.base_url));
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if !form.is_empty() {
            req = req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(form).unwrap());
        }
        Reply::read(req.send().await.unwrap()).await
    }

    async fn get(&self, path: &str, user: Option<&User>) -> Value {
        self.call("GET", path, user.map(|u| u.token.as_str()), &[])
            .await
            .expect(200)
            .json()
    }

    async fn sql(&self, sql: &'static str, binds: &[i64]) -> Option<i64> {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.db)
            .await
            .unwrap();
        let mut q = sqlx::query_scalar::<_, i64>(sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.fetch_optional(&mut conn).await.unwrap()
    }

    /// A remote account on `domain` with a public status tagged #cats; (account, status).
    async fn remote_poster(&self, username: &str, domain: &str) -> (i64, i64) {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.db)
            .await
            .unwrap();
        let (account,): (i64,) =
            sqlx::query_as("INSERT INTO accounts (username, domain) VALUES ($1, $2) RETURNING id")
                .bind(username)
                .bind(domain)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let (status,): (i64,) = sqlx::query_as(
            "INSERT INTO statuses (account_id, uri, text, content_html, visibility) \
             VALUES ($1, $2, 'meow #cats', '<p>meow #cats</p>', 'public') RETURNING id",
        )
        .bind(account)
        .bind(format!("https://{domain}/statuses/{username}"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "WITH t AS (INSERT INTO tags (name) VALUES ('cats') \
                        ON CONFLICT (lower(name)) DO UPDATE SET name = excluded.name RETURNING id) \
             INSERT INTO statuses_tags (status_id, tag_id) SELECT $1, id FROM t",
        )
        .bind(status)
        .execute(&mut conn)
        .await
        .unwrap();
        (account, status)
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
async fn a_blocked_domain_is_hidden_from_timelines_boosts_and_notifications() {
    let api = Api::start().await;
    let alice = api.user_with("alice", "read write follow").await;
    let bob = api.user_with("bob", "read write follow").await;
    let carol = api.user_with("carol", "read write follow").await;
    let (evil, evil_status) = api.remote_poster("troll", "evil.example").await;
    let (fine, fine_status) = api.remote_poster("friend", "fine.example").await;
    let (evil_status, fine_status) = (evil_status.to_string(), fine_status.to_string());
    let alice_id: i64 = alice.id.parse().unwrap();
    // A follower of alice on the domain, and notifications from both domains.
    api.sql(
        "INSERT INTO follows (account_id, target_account_id) VALUES ($1, $2) RETURNING id",
        &[evil, alice_id],
    )
    .await;
    for from in [evil, fine] {
        api.sql(
            "INSERT INTO notifications (account_id, from_account_id, type) \
             VALUES ($1, $2, 'follow') RETURNING id",
            &[alice_id, from],
        )
        .await;
    }
    assert_eq!(
        api.get("/api/v1/notifications", Some(&alice))
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let blocked = api
        .call(
            "POST",
            "/api/v1/domain_blocks",
            Some(&alice.token),
            &[("domain", " Evil.Example. ")],
        )
        .await
        .expect(200);
    assert_eq!(blocked.json(), json!({}));
    assert_eq!(
        api.get("/api/v1/domain_blocks", Some(&alice)).await,
        json!(["evil.example"])
    );
    // Blocking again changes nothing.
    api.call(
        "POST",
        "/api/v1/domain_blocks",
        Some(&alice.token),
        &[("domain", "evil.example")],
    )
    .await
    .expect(200);
    assert_eq!(
        api.get("/api/v1/domain_blocks", Some(&alice)).await,
        json!(["evil.example"])
    );

    let rel = api
        .get(
            &format!("/api/v1/accounts/relationships?id[]={evil}&id[]={fine}"),
            Some(&alice),
        )
        .await;
    assert_eq!(rel[0]["domain_blocking"], true, "{rel}");
    assert_eq!(rel[1]["domain_blocking"], false, "{rel}");
    let rel = api
        .get(
            &format!("/api/v1/accounts/relationships?id[]={evil}"),
            Some(&bob),
        )
        .await;
    assert_eq!(rel[0]["domain_blocking"], false);

    // The follower on the blocked domain is gone.
    assert_eq!(
        api.sql(
            "SELECT count(*) FROM follows WHERE account_id = $1 AND target_account_id = $2",
            &[evil, alice_id]
        )
        .await,
        Some(0)
    );

    // Public and hashtag timelines: hidden for alice only.
    for path in [
        "/api/v1/timelines/public",
        "/api/v1/timelines/public?remote=true",
        "/api/v1/timelines/tag/cats",
    ] {
        assert_eq!(
            ids(&api.get(path, Some(&alice)).await),
            vec![fine_status.clone()],
            "{path}"
        );
        assert_eq!(
            ids(&api.get(path, Some(&bob)).await),
            vec![fine_status.clone(), evil_status.clone()],
            "{path}"
        );
        assert_eq!(
            ids(&api.get(path, None).await),
            vec![fine_status.clone(), evil_status.clone()],
            "{path}"
        );
    }

    // Notifications: hidden, unless alice follows the sender.
    let notes = api.get("/api/v1/notifications", Some(&alice)).await;
    let from: Vec<String> = notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["account"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(from, vec![fine.to_string()], "{notes}");
    api.sql(
        "INSERT INTO follows (account_id, target_account_id) VALUES ($1, $2) RETURNING id",
        &[alice_id, evil],
    )
    .await;
    assert_eq!(
        api.get("/api/v1/notifications", Some(&alice))
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    api.sql(
        "DELETE FROM follows WHERE account_id = $1 AND target_account_id = $2 RETURNING id",
        &[alice_id, evil],
    )
    .await;

    // Home: bob boosts the blocked domain's status. alice's feed never gets it (fan-out);
    // carol's does, and reading hides it once carol blocks the domain too.
    for follower in [&alice, &carol] {
        api.call(
            "POST",
            &format!("/api/v1/accounts/{}/follow", bob.id),
            Some(&follower.token),
            &[],
        )
        .await
        .expect(200);
    }
    // Both feeds are built (read once) before fan-out writes into them.
    for u in [&alice, &carol] {
        api.get("/api/v1/timelines/home", Some(u)).await;
    }
    let boost = api
        .call(
            "POST",
            &format!("/api/v1/statuses/{evil_status}/reblog"),
            Some(&bob.token),
            &[],
        )
        .await
        .expect(200)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let after = api
        .call(
            "POST",
            "/api/v1/statuses",
            Some(&bob.token),
            &[("status", "plain")],
        )
        .await
        .expect(200)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let redis = redis::Client::open(service_env("FEDI_TEST_REDIS_URL")).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let feed = |id: &str| api.keys.key(&format!("feed:home:{{{id}}}"));
    eventually(
        Duration::from_secs(15),
        "carol's home to show the boost and the post",
        || async {
            let h = ids_future(&api, &carol).await;
            (h == vec![after.clone(), boost.clone()]).then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "alice's home to show the post",
        || async { (ids_future(&api, &alice).await == vec![after.clone()]).then_some(()) },
    )
    .await;
    let in_feed = |key: String, member: String| {
        let mut conn = conn.clone();
        async move {
            let score: Option<f64> = redis::cmd("ZSCORE")
                .arg(key)
                .arg(member)
                .query_async(&mut conn)
                .await
                .unwrap();
            score.is_some()
        }
    };
    assert!(
        !in_feed(feed(&alice.id), boost.clone()).await,
        "fan-out skipped alice"
    );
    assert!(in_feed(feed(&alice.id), after.clone()).await);
    assert!(in_feed(feed(&carol.id), boost.clone()).await);
    api.call(
        "POST",
        "/api/v1/domain_blocks",
        Some(&carol.token),
        &[("domain", "evil.example")],
    )
    .await
    .expect(200);
    assert_eq!(
        ids_future(&api, &carol).await,
        vec![after.clone()],
        "reading hides it"
    );
    conn.del::<_, ()>(feed(&alice.id)).await.unwrap();
    assert_eq!(
        ids_future(&api, &alice).await,
        vec![after.clone()],
        "a rebuilt feed too"
    );

    // Unblocking brings the domain back.
    let unblocked = api
        .call(
            "DELETE",
            "/api/v1/domain_blocks?domain=evil.example",
            Some(&alice.token),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(unblocked.json(), json!({}));
    assert_eq!(
        api.get("/api/v1/domain_blocks", Some(&alice)).await,
        json!([])
    );
    assert_eq!(
        ids(&api.get("/api/v1/timelines/public", Some(&alice)).await),
        vec![after.clone(), fine_status.clone(), evil_status.clone()]
    );
    // Unblocking what is not blocked is no error.
    api.call(
        "DELETE",
        "/api/v1/domain_blocks",
        Some(&alice.token),
        &[("domain", "never.example")],
    )
    .await
    .expect(200);
}

async fn ids_future(api: &Api, u: &User) -> Vec<String> {
    ids(&api.get("/api/v1/timelines/home", Some(u)).await)
}

use redis::AsyncCommands;

#[tokio::test]
async fn domain_blocks_page_validate_and_need_their_scopes() {
    let api = Api::start().await;
    let alice = api.user_with("alice", "read write").await;
    for d in ["a.example", "b.example", "bücher.example"] {
        api.call(
            "POST",
            "/api/v1/domain_blocks",
            Some(&alice.token),
            &[("domain", d)],
        )
        .await
        .expect(200);
    }
    let first = api
        .call(
            "GET",
            "/api/v1/domain_blocks?limit=2",
            Some(&alice.token),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(first.json(), json!(["xn--bcher-kva.example", "b.example"]));
    let next = first.link("next").expect("a next link");
    assert!(
        next.contains("max_id=") && next.contains("limit=2"),
        "{next}"
    );
    let second = api
        .call("GET", &next, Some(&alice.token), &[])
        .await
        .expect(200);
    assert_eq!(second.json(), json!(["a.example"]));
    let prev = second.link("prev").expect("a prev link");
    let back = api
        .call("GET", &prev, Some(&alice.token), &[])
        .await
        .expect(200);
    assert_eq!(back.json(), json!(["xn--bcher-kva.example", "b.example"]));

    for bad in ["", "https://evil.example/", "evil.example:443", "127.0.0.1"] {
        let reply = api
            .call(
                "POST",
                "/api/v1/domain_blocks",
                Some(&alice.token),
                &[("domain", bad)],
            )
            .await;
        assert_eq!(reply.status, 422, "{bad:?}: {}", reply.text());
        assert!(
            reply.json()["error"].as_str().unwrap().contains("omain"),
            "{}",
            reply.text()
        );
    }
    api.call("POST", "/api/v1/domain_blocks", Some(&alice.token), &[])
        .await
        .expect(422);

    // read:blocks lists, write:blocks changes; `follow` covers both, as in Mastodon.
    let reader = api.user_with("reader", "read:blocks").await;
    api.call("GET", "/api/v1/domain_blocks", Some(&reader.token), &[])
        .await
        .expect(200);
    api.call(
        "POST",
        "/api/v1/domain_blocks",
        Some(&reader.token),
        &[("domain", "x.example")],
    )
    .await
    .expect(403);
    let writer = api.user_with("writer", "write:blocks").await;
    api.call("GET", "/api/v1/domain_blocks", Some(&writer.token), &[])
        .await
        .expect(403);
    api.call(
        "DELETE",
        "/api/v1/domain_blocks",
        Some(&writer.token),
        &[("domain", "x.example")],
    )
    .await
    .expect(200);
    let follow = api.user_with("follow", "follow").await;
    api.call(
        "POST",
        "/api/v1/domain_blocks",
        Some(&follow.token),
        &[("domain", "x.example")],
    )
    .await
    .expect(200);
    assert_eq!(
        api.get("/api/v1/domain_blocks", Some(&follow)).await,
        json!(["x.example"])
    );
    api.call("GET", "/api/v1/domain_blocks", None, &[])
        .await
        .expect(401);
}
