//! The worker's timeline jobs, end to end: an api and a `fedi-server worker` process on real
//! PostgreSQL and Redis (standalone and the cluster). Posting, boosting, deleting,
//! unfollowing, blocking and muting go through the API; the feeds are read both through
//! the home timeline and straight from Redis (reading filters what it should not show, so
//! only Redis proves that an entry was removed or never added); streaming events are read
//! from Redis pub/sub.
//!
//! The worker runs one job at a time, so jobs finish in the order they were queued: a
//! status posted by an account nobody follows (`barrier`) has reached its own feed only
//! once every job queued before it is done.

mod common;

use std::time::Duration;

use common::*;
use fedi_server::redis_keys::Namespace;
use futures::StreamExt;
use reqwest::header;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// Reads the server's Redis behind its back.
enum Probe {
    Standalone(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Probe {
    async fn new(urls: &[String]) -> Self {
        if urls.len() == 1 {
            let client = redis::Client::open(urls[0].as_str()).unwrap();
            Probe::Standalone(client.get_multiplexed_async_connection().await.unwrap())
        } else {
            let client = redis::cluster::ClusterClient::new(urls.to_vec()).unwrap();
            Probe::Cluster(client.get_async_connection().await.unwrap())
        }
    }

    async fn run(&self, cmd: &redis::Cmd) {
        match self {
            Probe::Standalone(c) => cmd.query_async::<()>(&mut c.clone()).await.unwrap(),
            Probe::Cluster(c) => cmd.query_async::<()>(&mut c.clone()).await.unwrap(),
        }
    }

    async fn ids(&self, cmd: &redis::Cmd) -> Vec<i64> {
        match self {
            Probe::Standalone(c) => cmd.query_async(&mut c.clone()).await.unwrap(),
            Probe::Cluster(c) => cmd.query_async(&mut c.clone()).await.unwrap(),
        }
    }
}

struct Env {
    /// The server's namespace on Redis.
    keys: Namespace,
    domain: String,
    api: Server,
    _worker: Server,
    db: String,
    redis_urls: Vec<String>,
    probe: Probe,
    http: reqwest::Client,
    clock: User,
}

#[derive(Clone)]
struct User {
    id: i64,
    token: String,
}

impl Env {
    async fn start(cluster: bool) -> Self {
        install_crypto_provider();
        let db = migrated_database().await;
        // Job queues are named by domain: a worker of another test (another database) on
        // the shared Redis must not take these jobs.
        let domain = unique_domain();
        let mut env = vec![("FEDI_DOMAIN", domain.as_str())];
        let redis = if cluster {
            env.push(("FEDI_REDIS_MODE", "cluster"));
            service_env("FEDI_TEST_REDIS_CLUSTER_NODES")
        } else {
            service_env("FEDI_TEST_REDIS_URL")
        };
        let api = start_api_with(&db, &redis, &env).await;
        let mut worker_env = env.clone();
        worker_env.push(("FEDI_WORKER_CONCURRENCY", "1"));
        let worker = start_worker(&db, &redis, &worker_env);
        let redis_urls: Vec<String> = redis.split(',').map(str::to_owned).collect();
        let probe = Probe::new(&redis_urls).await;
        let mut env = Self {
            keys: Namespace::new(&domain),
            domain: domain.clone(),
            api,
            _worker: worker,
            db,
            redis_urls,
            probe,
            http: reqwest::Client::new(),
            clock: User {
                id: 0,
                token: String::new(),
            },
        };
        env.clock = env.user("clock").await;
        env.home(&env.clock).await;
        env
    }

    async fn user(&self, name: &str) -> User {
        let (account_id, user_id) = create_user(&self.db, name, "a long password 123").await;
        User {
            id: account_id,
            token: issue_token(&self.db, Some(user_id), "read write follow").await,
        }
    }

    async fn call(&self, method: &str, path: &str, user: &User, pairs: &[(&str, &str)]) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .http
            .request(method.clone(), format!("{}{path}", self.api.base_url))
            .header(header::AUTHORIZATION, format!("Bearer {}", user.token))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(pairs).unwrap())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "{method} {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn post(&self, user: &User, path: &str, pairs: &[(&str, &str)]) -> Value {
        self.call("POST", path, user, pairs).await
    }

    async fn act(&self, user: &User, path: &str, target: &User) -> Value {
        self.post(user, &format!("/api/v1/accounts/{}/{path}", target.id), &[])
            .await
    }

    async fn status(&self, user: &User, text: &str) -> i64 {
        let s = self
            .post(user, "/api/v1/statuses", &[("status", text)])
            .await;
        id_of(&s)
    }

    async fn reblog(&self, user: &User, status: i64) -> i64 {
        id_of(
            &self
                .post(user, &format!("/api/v1/statuses/{status}/reblog"), &[])
                .await,
        )
    }

    /// The home timeline through the API (which builds the feed when missing).
    async fn home(&self, user: &User) -> Vec<i64> {
        let list = self
            .call("GET", "/api/v1/timelines/home?limit=40", user, &[])
            .await;
        ids(&list)
    }

    async fn list_timeline(&self, user: &User, list: i64) -> Vec<i64> {
        ids(&self
            .call("GET", &format!("/api/v1/timelines/list/{list}"), user, &[])
            .await)
    }

    /// The feed's entries as Redis holds them, without the built marker.
    async fn feed(&self, user: &User) -> Vec<i64> {
        let cmd = redis::cmd("ZRANGE")
            .arg(self.keys.key(&format!("feed:home:{{{}}}", user.id)))
            .arg(0)
            .arg(-1)
            .clone();
        let mut ids = self.probe.ids(&cmd).await;
        ids.retain(|id| *id != 0);
        ids
    }

    async fn extra_reblogs(&self, user: &User, original: i64) -> Vec<i64> {
        let cmd = redis::cmd("SMEMBERS")
            .arg(
                self.keys
                    .key(&format!("feed:home:{{{}}}:reblogs:{original}", user.id)),
            )
            .clone();
        self.probe.ids(&cmd).await
    }

    /// Waits until every job queued so far has run (see the module note).
    async fn barrier(&self) {
        let id = self.status(&self.clock, "tick").await;
        eventually(WAIT, "the worker to reach the barrier", || async {
            self.feed(&self.clock).await.contains(&id).then_some(())
        })
        .await;
    }
}

fn id_of(v: &Value) -> i64 {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {v}"))
        .parse()
        .unwrap()
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(id_of)
        .collect()
}

/// Events received on `channels`, as (channel, event, payload).
struct Events(tokio::sync::mpsc::UnboundedReceiver<(String, String, String)>);

impl Events {
    /// `channels` as the server names them, within its namespace `keys` on Redis.
    async fn subscribe(url: &str, keys: &Namespace, channels: &[String]) -> Self {
        let client = redis::Client::open(url).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        for c in channels {
            pubsub.subscribe(keys.channel(c)).await.unwrap();
        }
        let keys = keys.clone();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(m) = messages.next().await {
                let body: String = m.get_payload().unwrap();
                let v: Value = serde_json::from_str(&body).unwrap();
                let event = v["event"].as_str().unwrap().to_string();
                let payload = v["payload"].as_str().unwrap().to_string();
                if tx
                    .send((
                        keys.channel_name(m.get_channel_name()).unwrap().to_string(),
                        event,
                        payload,
                    ))
                    .is_err()
                {
                    break;
                }
            }
        });
        Self(rx)
    }

    /// Everything received so far.
    fn drain(&mut self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        while let Ok(e) = self.0.try_recv() {
            out.push(e);
        }
        out
    }
}

/// The status id an event is about: the entity's id, or the bare id of a delete.
fn about(event: &str, payload: &str) -> i64 {
    if event == "delete" {
        payload.parse().unwrap()
    } else {
        let v: Value = serde_json::from_str(payload).unwrap();
        id_of(&v)
    }
}

fn has(events: &[(String, String, String)], channel: &str, event: &str, id: i64) -> bool {
    events
        .iter()
        .any(|(c, e, p)| c == channel && e == event && about(e, p) == id)
}

async fn scenario(env: Env, with_events: bool) {
    let me = env.user("me").await;
    let author = env.user("author").await;
    let b1 = env.user("booster1").await;
    let b2 = env.user("booster2").await;
    let stranger = env.user("stranger").await;
    let listy = env.user("listy").await;
    for target in [&author, &b1, &b2] {
        env.act(&me, "follow", target).await;
    }
    env.act(&listy, "follow", &author).await;
    env.act(&author, "follow", &me).await;
    let list = id_of(
        &env.post(
            &listy,
            "/api/v1/lists",
            &[("title", "authors"), ("exclusive", "true")],
        )
        .await,
    );
    env.post(
        &listy,
        &format!("/api/v1/lists/{list}/accounts"),
        &[("account_ids[]", &author.id.to_string())],
    )
    .await;
    for u in [&me, &author, &b1, &b2, &listy] {
        env.home(u).await;
    }
    let mut events = if with_events {
        let channels = vec![
            format!("timeline:{}", me.id),
            "timeline:public".to_string(),
            "timeline:public:local".to_string(),
            "timeline:hashtag:fanout".to_string(),
            format!("timeline:list:{list}"),
        ];
        // Marked as listened to, as the streamer marks what its clients listen to; the
        // author's home channel is subscribed without the mark: a home stream nobody has
        // open gets no events.
        for c in &channels {
            let mut set = redis::cmd("SET");
            set.arg(env.keys.key(&format!("subscribed:{c}")))
                .arg("1")
                .arg("EX")
                .arg(600);
            env.probe.run(&set).await;
        }
        let mut all = channels;
        all.push(format!("timeline:{}", author.id));
        Some(Events::subscribe(&env.redis_urls[0], &env.keys, &all).await)
    } else {
        None
    };

    // A post reaches its author and followers through the worker, not the exclusive
    // list's owner's home; the list shows it.
    let post = env.status(&author, "hello #fanout").await;
    env.barrier().await;
    assert!(env.feed(&me).await.contains(&post));
    assert!(env.feed(&author).await.contains(&post));
    assert!(env.home(&me).await.contains(&post));
    assert!(
        !env.feed(&listy).await.contains(&post),
        "exclusive list member in home"
    );
    assert!(!env.home(&listy).await.contains(&post));
    assert_eq!(env.list_timeline(&listy, list).await, vec![post]);
    if let Some(ev) = &mut events {
        let got = ev.drain();
        let me_channel = format!("timeline:{}", me.id);
        for channel in [
            me_channel.as_str(),
            "timeline:public",
            "timeline:public:local",
            "timeline:hashtag:fanout",
        ] {
            assert!(has(&got, channel, "update", post), "{channel}: {got:?}");
        }
        assert!(
            has(&got, &format!("timeline:list:{list}"), "update", post),
            "{got:?}"
        );
        assert!(
            !has(&got, &format!("timeline:{}", author.id), "update", post),
            "an update to a home stream nobody listens to: {got:?}"
        );
        // Rendered once, for anyone: no viewer's own marks.
        let (_, _, payload) = got.iter().find(|(c, _, _)| *c == me_channel).unwrap();
        let status: Value = serde_json::from_str(payload).unwrap();
        assert!(
            status["content"].as_str().unwrap().contains("hello"),
            "{status}"
        );
        assert!(status.get("favourited").is_none(), "{status}");
    }

    // Boosts de-duplicated: the second boost of a status is tracked, not shown; a boost of
    // a status already near the top of the feed is not shown either.
    let s = env.status(&stranger, "boost me").await;
    let r1 = env.reblog(&b1, s).await;
    let r2 = env.reblog(&b2, s).await;
    let r3 = env.reblog(&b1, post).await;
    let b1_own = env.status(&b1, "b1 speaking").await;
    env.barrier().await;
    let feed = env.feed(&me).await;
    assert!(feed.contains(&r1) && feed.contains(&b1_own), "{feed:?}");
    assert!(!feed.contains(&r2) && !feed.contains(&r3), "{feed:?}");
    assert_eq!(env.extra_reblogs(&me, s).await, vec![r2]);
    let home = env.home(&me).await;
    assert!(home.contains(&r1) && !home.contains(&r2) && !home.contains(&r3));
    // b2's own feed has its reblog: de-duplication is per feed.
    assert!(env.feed(&b2).await.contains(&r2));

    // Undoing the shown boost brings the tracked one in its place (Mastodon's
    // remove_from_feed).
    env.post(&b1, &format!("/api/v1/statuses/{s}/unreblog"), &[])
        .await;
    env.barrier().await;
    let feed = env.feed(&me).await;
    assert!(!feed.contains(&r1) && feed.contains(&r2), "{feed:?}");

    // Deleting removes the status (and its reblogs) from every feed, with delete events.
    env.call("DELETE", &format!("/api/v1/statuses/{post}"), &author, &[])
        .await;
    env.barrier().await;
    for u in [&me, &author] {
        let feed = env.feed(u).await;
        assert!(!feed.contains(&post) && !feed.contains(&r3), "{feed:?}");
    }
    if let Some(ev) = &mut events {
        let got = ev.drain();
        for channel in [format!("timeline:{}", me.id), "timeline:public".into()] {
            assert!(has(&got, &channel, "delete", post), "{channel}: {got:?}");
        }
        assert!(has(&got, &format!("timeline:list:{list}"), "delete", post));
    }

    // An edit sends status.update to followers.
    let q = env.status(&author, "first version").await;
    let mine = env.status(&me, "mine, for my follower").await;
    env.barrier().await;
    env.call(
        "PUT",
        &format!("/api/v1/statuses/{q}"),
        &author,
        &[("status", "second version")],
    )
    .await;
    env.barrier().await;
    assert!(env.feed(&me).await.contains(&q));
    assert!(env.feed(&author).await.contains(&mine));
    if let Some(ev) = &mut events {
        let got = ev.drain();
        let update = got
            .iter()
            .find(|(c, e, _)| *c == format!("timeline:{}", me.id) && e == "status.update")
            .unwrap_or_else(|| panic!("no status.update: {got:?}"));
        assert!(update.2.contains("second version"), "{update:?}");
    }

    // Mute: the muted booster's entries leave the feed.
    env.act(&me, "mute", &b2).await;
    env.barrier().await;
    assert!(!env.feed(&me).await.contains(&r2));

    // Unfollow: the account's statuses leave the feed.
    env.act(&me, "unfollow", &b1).await;
    env.barrier().await;
    assert!(!env.feed(&me).await.contains(&b1_own));

    // Block: both feeds lose the other's statuses (the follows both ways are gone).
    env.act(&me, "block", &author).await;
    env.barrier().await;
    assert!(!env.feed(&me).await.contains(&q));
    assert!(!env.feed(&author).await.contains(&mine));
    if let Some(ev) = &mut events {
        assert!(has(
            &ev.drain(),
            &format!("timeline:{}", me.id),
            "delete",
            q
        ));
    }

    // Taking the author out of the exclusive list brings their statuses into home.
    env.call(
        "DELETE",
        &format!("/api/v1/lists/{list}/accounts"),
        &listy,
        &[("account_ids[]", &author.id.to_string())],
    )
    .await;
    env.barrier().await;
    assert!(env.home(&listy).await.contains(&q));
    assert!(env.feed(&listy).await.contains(&q));
    // And putting them back takes what is already there out again.
    env.post(
        &listy,
        &format!("/api/v1/lists/{list}/accounts"),
        &[("account_ids[]", &author.id.to_string())],
    )
    .await;
    env.barrier().await;
    assert!(!env.feed(&listy).await.contains(&q));
    assert!(!env.home(&listy).await.contains(&q));
}

#[tokio::test]
async fn fan_out_and_removal_run_in_the_worker() {
    scenario(Env::start(false).await, true).await;
}

#[tokio::test]
async fn fan_out_and_removal_run_in_the_worker_on_a_redis_cluster() {
    scenario(Env::start(true).await, false).await;
}

/// Feeds of accounts that stopped reading are dropped, left alone by fan-out, and rebuilt
/// whole when the account reads again.
#[tokio::test]
async fn feeds_of_inactive_accounts_are_dropped_and_rebuilt_on_return() {
    let env = Env::start(false).await;
    let away = env.user("away").await;
    let friend = env.user("friend").await;
    env.act(&away, "follow", &friend).await;
    env.home(&away).await;
    let before = env.status(&friend, "while you were here").await;
    env.barrier().await;
    assert_eq!(env.feed(&away).await, vec![before]);

    // A week and a day without reading home.
    let Probe::Standalone(c) = &env.probe else {
        unreachable!()
    };
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 8 * 24 * 3600;
    let _: i64 = redis::cmd("ZADD")
        .arg(env.keys.key("feed:home:active"))
        .arg(old)
        .arg(away.id)
        .query_async(&mut c.clone())
        .await
        .unwrap();
    let vars = [
        ("FEDI_DOMAIN", env.domain.clone()),
        ("FEDI_DATABASE_URL", env.db.clone()),
        ("FEDI_REDIS_URL", env.redis_urls[0].clone()),
    ];
    let config = fedi_config::ServerConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let state = fedi_server::state::AppState::new(&config).unwrap();
    assert!(
        fedi_server::tasks::timeline::clean_feeds(&state)
            .await
            .unwrap()
            >= 1
    );
    let exists: i64 = redis::cmd("EXISTS")
        .arg(env.keys.key(&format!("feed:home:{{{}}}", away.id)))
        .query_async(&mut c.clone())
        .await
        .unwrap();
    assert_eq!(exists, 0, "the feed was dropped");
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(env.keys.key("feed:home:active"))
        .arg(away.id)
        .query_async(&mut c.clone())
        .await
        .unwrap();
    assert_eq!(score, None);

    // Fan-out leaves the dropped feed alone; reading home rebuilds it with everything.
    let after = env.status(&friend, "while you were away").await;
    env.barrier().await;
    assert!(env.feed(&away).await.is_empty());
    assert_eq!(env.home(&away).await, vec![after, before]);
    assert_eq!(env.feed(&away).await, vec![before, after]);
}

/// Mastodon's followed hashtags: a public original under a followed tag reaches the
/// follower's home feed through fan-out (not its unlisted posts, not boosts, not authors the
/// follower mutes), the rebuilt feed holds the same, and unfollowing the tag takes them out.
#[tokio::test]
async fn followed_hashtags_bring_public_posts_into_home() {
    let env = Env::start(false).await;
    let reader = env.user("reader").await;
    let author = env.user("author").await;
    let muted = env.user("muted").await;
    env.home(&reader).await;
    env.post(&reader, "/api/v1/tags/Rust/follow", &[]).await;
    env.act(&reader, "mute", &muted).await;
    // Following the tag dropped the feed; build it again so that fan-out writes into it.
    env.home(&reader).await;

    let tagged = env.status(&author, "hello #rust").await;
    let untagged = env.status(&author, "hello world").await;
    let unlisted = id_of(
        &env.post(
            &author,
            "/api/v1/statuses",
            &[("status", "quiet #rust"), ("visibility", "unlisted")],
        )
        .await,
    );
    let from_muted = env.status(&muted, "muted #Rust").await;
    let boost = env.reblog(&muted, tagged).await;
    env.barrier().await;

    let feed = env.feed(&reader).await;
    assert!(
        feed.contains(&tagged),
        "followed tag's post missing: {feed:?}"
    );
    for (what, id) in [
        ("untagged", untagged),
        ("unlisted", unlisted),
        ("muted author", from_muted),
        ("boost", boost),
    ] {
        assert!(
            !feed.contains(&id),
            "{what} status {id} in the feed: {feed:?}"
        );
    }

    // A rebuild from PostgreSQL agrees with fan-out.
    env.probe
        .run(redis::cmd("DEL").arg(env.keys.key(&format!("feed:home:{{{}}}", reader.id))))
        .await;
    assert_eq!(env.home(&reader).await, vec![tagged]);

    env.post(&reader, "/api/v1/tags/rust/unfollow", &[]).await;
    assert!(env.home(&reader).await.is_empty());
}
