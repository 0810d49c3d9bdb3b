//! Timelines over HTTP against the real server, PostgreSQL and Redis: the public, local,
//! remote and hashtag timelines (content, pagination, what never shows there), and the home
//! timeline's Redis feed: fan-out on posting and reblogging (by a `fedi-server worker`),
//! removal on deleting and unfollowing, mutes and blocks, the rebuild of a missing feed,
//! once on a Redis cluster.

mod common;

use std::time::Duration;

use common::*;
use reqwest::header;
use serde_json::Value;

struct Api {
    /// Unique per test: job queues are named by domain, and the worker of one test must
    /// not take the jobs of another (with another database) on the shared Redis.
    domain: String,
    server: Server,
    /// Fans new statuses out into the feeds.
    _worker: Server,
    db: String,
    /// How the test reaches the server's Redis, to evict feeds behind its back.
    redis: Vec<String>,
    http: reqwest::Client,
}

#[derive(Clone)]
struct User {
    id: String,
    token: String,
}

impl Api {
    async fn start() -> Self {
        install_crypto_provider();
        let domain = unique_domain();
        let env = [("FEDI_DOMAIN", domain.as_str())];
        let (server, db) = api_on_fresh_database(&env).await;
        let redis = service_env("FEDI_TEST_REDIS_URL");
        Self {
            _worker: start_worker(&db, &redis, &env),
            domain,
            server,
            db,
            redis: vec![redis],
            http: reqwest::Client::new(),
        }
    }

    async fn start_cluster() -> Self {
        install_crypto_provider();
        let db = migrated_database().await;
        let nodes = service_env("FEDI_TEST_REDIS_CLUSTER_NODES");
        let domain = unique_domain();
        let env = [
            ("FEDI_REDIS_MODE", "cluster"),
            ("FEDI_DOMAIN", domain.as_str()),
        ];
        let server = start_api_with(&db, &nodes, &env).await;
        Self {
            _worker: start_worker(&db, &nodes, &env),
            domain,
            server,
            db,
            redis: nodes.split(',').map(str::to_owned).collect(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>) -> Reply {
        let base = format!("https://{}", self.domain);
        let path = path.strip_prefix(base.as_str()).unwrap_or(path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.base_url));
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        Reply::read(req.send().await.expect("the server answers")).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call("GET", path, token).await
    }

    async fn post_form(&self, path: &str, user: &User, pairs: &[(&str, &str)]) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.server.base_url))
            .header(header::AUTHORIZATION, format!("Bearer {}", user.token))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(pairs).unwrap())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "POST {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn conn(&self) -> sqlx::PgConnection {
        <sqlx::PgConnection as sqlx::Connection>::connect(&self.db)
            .await
            .unwrap()
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

    async fn post_status(&self, user: &User, text: &str, visibility: &str) -> String {
        let s = self
            .post_form(
                "/api/v1/statuses",
                user,
                &[("status", text), ("visibility", visibility)],
            )
            .await;
        s["id"].as_str().unwrap().to_string()
    }

    async fn act(&self, user: &User, path: &str) -> Value {
        self.post_form(path, user, &[]).await
    }

    /// All pages of `path` (which carries its own `limit`) following `next` links.
    async fn all_pages(&self, path: &str, token: Option<&str>) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut url = path.to_string();
        loop {
            let reply = self.get(&url, token).await.expect(200);
            let page = ids(&reply.json());
            if page.is_empty() {
                return pages;
            }
            pages.push(page);
            url = reply.link("next").expect("a next link");
            assert!(pages.len() < 20, "paging does not end");
        }
    }

    /// Deletes the server's key `name` (within its namespace).
    async fn del_redis_key(&self, name: &str) {
        let key = fedi_server::redis_keys::Namespace::new(&self.domain).key(name);
        let cmd = redis::cmd("DEL").arg(&key).clone();
        let deleted: i64 = if self.redis.len() == 1 {
            let client = redis::Client::open(self.redis[0].as_str()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            cmd.query_async(&mut c).await.unwrap()
        } else {
            let client = redis::cluster::ClusterClient::new(self.redis.clone()).unwrap();
            let mut c = client.get_async_connection().await.unwrap();
            cmd.query_async(&mut c).await.unwrap()
        };
        assert_eq!(deleted, 1, "{key} existed");
    }
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn newest_first(mut ids: Vec<String>) -> Vec<String> {
    ids.sort_by_key(|id| std::cmp::Reverse(id.parse::<i64>().unwrap()));
    ids
}

#[tokio::test]
async fn public_local_and_hashtag_timelines_show_public_statuses_in_pages() {
    let api = Api::start().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let mut public = Vec::new();
    let mut cats = Vec::new();
    let mut cats_and_dogs = Vec::new();
    for i in 0..45 {
        let text = match i % 6 {
            0 => format!("number {i} #cats #dogs"),
            3 => format!("number {i} #Cats"),
            _ => format!("number {i}"),
        };
        let id = api.post_status(&alice, &text, "public").await;
        if i % 3 == 0 {
            cats.push(id.clone());
        }
        if i % 6 == 0 {
            cats_and_dogs.push(id.clone());
        }
        public.push(id);
    }
    let public = newest_first(public);
    let cats = newest_first(cats);
    let cats_and_dogs = newest_first(cats_and_dogs);
    let private = api.post_status(&alice, "secret #cats", "private").await;
    let unlisted = api.post_status(&alice, "quiet #cats", "unlisted").await;
    let direct = api.post_status(&alice, "@bob hi #cats", "direct").await;
    let reblog = api
        .act(&bob, &format!("/api/v1/statuses/{}/reblog", public[0]))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A remote account's status, as federation will store it.
    let mut conn = api.conn().await;
    let (remote_account,): (i64,) = sqlx::query_as(
        "INSERT INTO accounts (username, domain) VALUES ('carol', 'remote.example') RETURNING id",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let (remote,): (i64,) = sqlx::query_as(
        "INSERT INTO statuses (account_id, uri, content_html) \
         VALUES ($1, 'https://remote.example/s/1', '<p>from afar</p>') RETURNING id",
    )
    .bind(remote_account)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let remote = remote.to_string();

    // Local: 45 statuses in pages of 20, 20, 5 through the next links, anonymously.
    let pages = api
        .all_pages("/api/v1/timelines/public?local=true&limit=20", None)
        .await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [20, 20, 5],
        "{pages:?}"
    );
    assert_eq!(pages.concat(), public);
    // The prev link of the second page leads back to the first.
    let second = api
        .get(
            &format!(
                "/api/v1/timelines/public?local=true&limit=20&max_id={}",
                public[19]
            ),
            None,
        )
        .await
        .expect(200);
    assert_eq!(ids(&second.json()), public[20..40]);
    let prev = second.link("prev").unwrap();
    assert!(
        prev.contains("local=true") && prev.contains("min_id="),
        "{prev}"
    );
    let back = api.get(&prev, None).await.expect(200);
    assert_eq!(ids(&back.json()), public[..20]);
    // since_id: the newest above it; limit is clamped at 40.
    let since = api
        .get(
            &format!("/api/v1/timelines/public?local=1&since_id={}", public[5]),
            None,
        )
        .await
        .expect(200);
    assert_eq!(ids(&since.json()), public[..5]);
    let clamped = api
        .get("/api/v1/timelines/public?limit=100", None)
        .await
        .expect(200);
    assert_eq!(ids(&clamped.json()).len(), 40);

    // The federated timeline adds the remote status; remote=true shows only it.
    let all = api
        .all_pages("/api/v1/timelines/public?limit=40", Some(&bob.token))
        .await
        .concat();
    assert_eq!(all.len(), 46);
    assert_eq!(all[0], remote);
    let remote_only = api
        .get("/api/v1/timelines/public?remote=true", None)
        .await
        .expect(200);
    assert_eq!(ids(&remote_only.json()), [remote]);
    for hidden in [&private, &unlisted, &direct, &reblog] {
        assert!(!all.contains(hidden), "{hidden} is not public");
    }
    let media = api
        .get("/api/v1/timelines/public?only_media=true", None)
        .await
        .expect(200);
    assert_eq!(ids(&media.json()), Vec::<String>::new());

    // Hashtags: case-insensitive, public statuses only, with any/all/none.
    let tagged = api
        .all_pages("/api/v1/timelines/tag/CATS?limit=10", None)
        .await;
    assert_eq!(tagged.concat(), cats);
    assert_eq!(tagged.len(), 2);
    let both = api
        .get("/api/v1/timelines/tag/cats?all[]=dogs&limit=40", None)
        .await
        .expect(200);
    assert_eq!(ids(&both.json()), cats_and_dogs);
    let without = api
        .get("/api/v1/timelines/tag/cats?none[]=dogs&limit=40", None)
        .await
        .expect(200);
    let expected: Vec<String> = cats
        .iter()
        .filter(|id| !cats_and_dogs.contains(id))
        .cloned()
        .collect();
    assert_eq!(ids(&without.json()), expected);
    let any = api
        .get("/api/v1/timelines/tag/dogs?any[]=cats&limit=40", None)
        .await
        .expect(200);
    assert_eq!(ids(&any.json()), cats);
    let local_tag = api
        .get("/api/v1/timelines/tag/cats?local=true&limit=1", None)
        .await
        .expect(200);
    assert_eq!(ids(&local_tag.json()), [cats[0].clone()]);
    let nothing = api
        .get("/api/v1/timelines/tag/nosuchtag", None)
        .await
        .expect(200);
    assert_eq!(ids(&nothing.json()), Vec::<String>::new());

    // A viewer does not see accounts they mute or block.
    api.act(&bob, &format!("/api/v1/accounts/{remote_account}/mute"))
        .await;
    let muted = api
        .get("/api/v1/timelines/public?remote=true", Some(&bob.token))
        .await
        .expect(200);
    assert_eq!(ids(&muted.json()), Vec::<String>::new());
    api.act(&bob, &format!("/api/v1/accounts/{}/block", alice.id))
        .await;
    let blocked = api
        .get("/api/v1/timelines/tag/cats", Some(&bob.token))
        .await
        .expect(200);
    assert_eq!(ids(&blocked.json()), Vec::<String>::new());

    // Scopes: a token must carry read:statuses; a bad token is refused.
    let write_only = api.user_with("dave", "write").await;
    api.get("/api/v1/timelines/public", Some(&write_only.token))
        .await
        .expect(403);
    api.get("/api/v1/timelines/tag/cats", Some(&write_only.token))
        .await
        .expect(403);
    api.get("/api/v1/timelines/public", Some("not-a-token"))
        .await
        .expect(401);
    let reader = api.user_with("erin", "read:statuses").await;
    api.get("/api/v1/timelines/public", Some(&reader.token))
        .await
        .expect(200);
}

/// The home timeline from one Redis deployment.
async fn home_timeline_scenario(api: Api) {
    let me = api.user("me").await;
    let friend = api.user("friend").await;
    let stranger = api.user("stranger").await;
    let noisy = api.user("noisy").await;
    let rude = api.user("rude").await;
    for target in [&friend, &noisy, &rude] {
        api.act(&me, &format!("/api/v1/accounts/{}/follow", target.id))
            .await;
    }
    let home = |token: String| {
        let api = &api;
        async move {
            ids(&api
                .get("/api/v1/timelines/home?limit=40", Some(&token))
                .await
                .expect(200)
                .json())
        }
    };
    // A first read builds the (empty) feed; what follows arrives by fan-out.
    assert_eq!(home(me.token.clone()).await, Vec::<String>::new());
    let mine = api.post_status(&me, "my own", "public").await;
    let f_public = api.post_status(&friend, "friend public", "public").await;
    let f_private = api.post_status(&friend, "friend private", "private").await;
    let f_gone = api
        .post_status(&friend, "friend, soon deleted", "unlisted")
        .await;
    let f_direct_other = api
        .post_status(&friend, "@stranger only for you", "direct")
        .await;
    let s_public = api
        .post_status(&stranger, "stranger public", "public")
        .await;
    let n_public = api.post_status(&noisy, "noisy public", "public").await;
    let r_public = api.post_status(&rude, "rude public", "public").await;
    let reblog = api
        .act(&friend, &format!("/api/v1/statuses/{s_public}/reblog"))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let expected = newest_first(vec![
        mine.clone(),
        f_public.clone(),
        f_private.clone(),
        f_gone.clone(),
        n_public.clone(),
        r_public.clone(),
        reblog.clone(),
    ]);
    // Fan-out runs in the worker.
    let got = eventually(Duration::from_secs(20), "the fan-out", || async {
        let got = home(me.token.clone()).await;
        (got == expected).then_some(got)
    })
    .await;
    for absent in [&s_public, &f_direct_other] {
        assert!(!got.contains(absent), "{absent} is not for me");
    }
    // The reblog shows the stranger's status inside it.
    let page = api
        .get("/api/v1/timelines/home?limit=1", Some(&me.token))
        .await
        .expect(200)
        .json();
    assert_eq!(page[0]["id"], reblog.as_str());
    assert_eq!(page[0]["reblog"]["id"], s_public.as_str());

    // Paging one at a time through next links gives the same list.
    let pages = api
        .all_pages("/api/v1/timelines/home?limit=2", Some(&me.token))
        .await;
    assert_eq!(pages.concat(), expected);
    let first = api
        .get("/api/v1/timelines/home?limit=2", Some(&me.token))
        .await
        .expect(200);
    assert_eq!(ids(&first.json()), expected[..2]);
    let older = api
        .get(&first.link("next").unwrap(), Some(&me.token))
        .await
        .expect(200);
    let newer = api
        .get(&older.link("prev").unwrap(), Some(&me.token))
        .await
        .expect(200);
    assert_eq!(ids(&newer.json()), expected[..2]);

    // Deleting removes the status from the feed.
    api.call(
        "DELETE",
        &format!("/api/v1/statuses/{f_gone}"),
        Some(&friend.token),
    )
    .await
    .expect(200);
    let expected: Vec<String> = expected.into_iter().filter(|id| *id != f_gone).collect();
    assert_eq!(home(me.token.clone()).await, expected);

    // Muted and blocked accounts leave the timeline.
    api.act(&me, &format!("/api/v1/accounts/{}/mute", noisy.id))
        .await;
    api.act(&me, &format!("/api/v1/accounts/{}/block", rude.id))
        .await;
    let expected: Vec<String> = expected
        .into_iter()
        .filter(|id| *id != n_public && *id != r_public)
        .collect();
    assert_eq!(home(me.token.clone()).await, expected);
    // Small pages fill past the hidden entries, and their links skip none of the others.
    for limit in [1, 2] {
        let pages = api
            .all_pages(
                &format!("/api/v1/timelines/home?limit={limit}"),
                Some(&me.token),
            )
            .await;
        let (last, full) = pages.split_last().expect("a page");
        assert!(
            full.iter().all(|p| p.len() == limit) && last.len() <= limit,
            "{pages:?}"
        );
        assert_eq!(pages.concat(), expected);
    }

    // An evicted feed is rebuilt from the database, with the same content.
    api.del_redis_key(&format!("feed:home:{{{}}}", me.id)).await;
    assert_eq!(home(me.token.clone()).await, expected);

    // Unfollowing removes their statuses and reblogs; following again brings them back.
    api.act(&me, &format!("/api/v1/accounts/{}/unfollow", friend.id))
        .await;
    let only_mine = vec![mine];
    eventually(Duration::from_secs(20), "the unfollow job", || async {
        (home(me.token.clone()).await == only_mine).then_some(())
    })
    .await;
    api.act(&me, &format!("/api/v1/accounts/{}/follow", friend.id))
        .await;
    assert_eq!(home(me.token.clone()).await, expected);

    // Unreblogging removes the reblog.
    api.act(&friend, &format!("/api/v1/statuses/{s_public}/unreblog"))
        .await;
    let expected: Vec<String> = expected.into_iter().filter(|id| *id != reblog).collect();
    assert_eq!(home(me.token.clone()).await, expected);

    // Scopes: a user token with read:statuses; none is 401, another scope 403.
    api.get("/api/v1/timelines/home", None).await.expect(401);
    let write_only = api.user_with("writer", "write").await;
    api.get("/api/v1/timelines/home", Some(&write_only.token))
        .await
        .expect(403);
}

#[tokio::test]
async fn home_timeline_is_a_redis_feed_filled_on_write_and_rebuilt_when_missing() {
    home_timeline_scenario(Api::start().await).await;
}

#[tokio::test]
async fn home_timeline_works_on_a_redis_cluster() {
    home_timeline_scenario(Api::start_cluster().await).await;
}
