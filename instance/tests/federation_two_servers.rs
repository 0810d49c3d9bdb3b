//! Two of our servers federating, nothing scripted: instances A and B run side by side on
//! loopback, each with its own database, api, worker and streamer, and a domain of its own
//! (`127.0.0.1:<port>`, which also names its job queues). Plain HTTP between them is allowed
//! only by `FEDI_FEDERATION_ALLOW_LOOPBACK`. Every step goes through the Mastodon REST and
//! streaming APIs and checks what a user of either server would see; deliveries are
//! asynchronous, so each check polls with a bounded wait.

mod common;
#[path = "streaming/support.rs"]
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use support::{Auth, Ws, start_streamer, until_subscribed};

/// How long a delivery may take to show: a job on each side, a fetch or two.
const DELIVERY: Duration = Duration::from_secs(30);

/// One server: its processes, database and domain.
struct Instance {
    /// `127.0.0.1:<port>`: the account domain, and where peers reach the api.
    domain: String,
    base: String,
    db: String,
    redis: String,
    _api: Server,
    _worker: Server,
    streamer: Server,
}

impl Instance {
    async fn start() -> Self {
        install_crypto_provider();
        let redis = service_env("FEDI_TEST_REDIS_URL");
        let port = free_port();
        let domain = format!("127.0.0.1:{port}");
        // Job queues are named by the domain: jobs an earlier run left for this port (its
        // retries) must not run against this test's database.
        clear_job_queues(&redis, &domain).await;
        let db = migrated_database().await;
        let env = [
            ("FEDI_DOMAIN", domain.as_str()),
            ("FEDI_FEDERATION_ALLOW_LOOPBACK", "true"),
            ("FEDI_WORKER_CONCURRENCY", "4"),
        ];
        let api = spawn(&db, &redis, "api", &domain, &env);
        answers_health(&api, "fedi-server api").await;
        // The worker's health listener is not waited for: the jobs it runs are.
        let worker = spawn(
            &db,
            &redis,
            "worker",
            &format!("127.0.0.1:{}", free_port()),
            &env,
        );
        let streamer = start_streamer(&db, &redis, &env).await;
        Self {
            base: api.base_url.clone(),
            domain,
            db,
            redis,
            _api: api,
            _worker: worker,
            streamer,
        }
    }

    /// A local user (created as an admin would, confirmed) and a client with its token.
    async fn user(&self, name: &str) -> Client {
        let (account_id, user_id) = create_user(&self.db, name, "pw-federation-123").await;
        Client {
            base: self.base.clone(),
            token: issue_token(&self.db, Some(user_id), "read write follow").await,
            account_id,
            http: reqwest::Client::new(),
        }
    }

    /// `name@domain`, as the other server writes this server's accounts.
    fn acct(&self, name: &str) -> String {
        format!("{name}@{}", self.domain)
    }
}

/// `fedi-server <role>` listening on `listen`; FEDI_TEST_LOGS=1 shows its log.
fn spawn(db: &str, redis: &str, role: &str, listen: &str, env: &[(&str, &str)]) -> Server {
    let child = server_command(db, redis)
        .arg(role)
        .env("FEDI_LISTEN", listen)
        .envs(env.iter().copied())
        .stdout(if std::env::var_os("FEDI_TEST_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap_or_else(|e| panic!("spawn fedi-server {role}: {e}"));
    Server {
        child,
        base_url: format!("http://{listen}"),
    }
}

async fn clear_job_queues(redis: &str, domain: &str) {
    let client = redis::Client::open(redis).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("{{fedi:jobs:{domain}:*");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// A user's API client on its own server.
#[derive(Clone)]
struct Client {
    base: String,
    token: String,
    account_id: i64,
    http: reqwest::Client,
}

impl Client {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::read(request.send().await.expect("the server answers")).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(Method::POST, path, Some(body))
            .await
            .expect(200)
            .json()
    }

    /// Posts a status; returns its id.
    async fn status(&self, body: Value) -> String {
        self.post("/api/v1/statuses", body).await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn relationship(&self, id: &str) -> Value {
        let reply = self
            .get(&format!("/api/v1/accounts/relationships?id[]={id}"))
            .await
            .expect(200)
            .json();
        reply[0].clone()
    }

    /// Polls the relationship with `id` until `check` accepts it.
    async fn relationship_until(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) {
        eventually(DELIVERY, what, || async {
            let r = self.relationship(id).await;
            check(&r).then_some(())
        })
        .await;
    }

    async fn home(&self) -> Vec<Value> {
        self.get("/api/v1/timelines/home?limit=40")
            .await
            .expect(200)
            .json()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Polls the home timeline until a status whose content has `text` is in it.
    async fn home_has(&self, text: &str) -> Value {
        eventually(
            DELIVERY,
            &format!("{text:?} in the home timeline"),
            || async { self.home().await.into_iter().find(|s| content_has(s, text)) },
        )
        .await
    }

    async fn notifications(&self) -> Vec<Value> {
        self.get("/api/v1/notifications?limit=40")
            .await
            .expect(200)
            .json()
            .as_array()
            .unwrap()
            .clone()
    }

    /// The user's stream, subscribed (checked with a probe) before it is returned.
    async fn stream(&self, instance: &Instance) -> Ws {
        let mut ws = Ws::connect(
            &instance.streamer.base_url,
            "stream=user",
            Auth::Header(&self.token),
        )
        .await
        .expect("the user stream opens");
        let state = support::app_state_of(&instance.domain, &instance.db, &instance.redis, false);
        until_subscribed(
            &mut ws,
            &state,
            &fedi_server::events::channel::user(self.account_id),
            Duration::from_secs(10),
        )
        .await;
        ws
    }
}

fn content_has(status: &Value, text: &str) -> bool {
    status["content"].as_str().is_some_and(|c| c.contains(text))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The payload of the next frame of `event` on `ws` (others are skipped).
async fn next_event(ws: &mut Ws, event: &str, what: &str) -> String {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = ws
            .next(left)
            .await
            .unwrap_or_else(|| panic!("no {event} on the stream for {what} within {DELIVERY:?}"));
        if frame["event"] == event {
            return frame["payload"].as_str().unwrap_or_default().to_string();
        }
    }
}

/// The status of the next frame of `event` (`update`, `status.update`).
async fn next_status(ws: &mut Ws, event: &str, what: &str) -> Value {
    let payload = next_event(ws, event, what).await;
    serde_json::from_str(&payload).unwrap_or_else(|e| panic!("{event} {payload}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_follow_post_interact_edit_delete_and_block_through_the_api() {
    let started = Instant::now();
    let (a, b) = tokio::join!(Instance::start(), Instance::start());
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    let carol = b.user("carol").await;
    eprintln!("two servers up in {:?}", started.elapsed());
    // Each names itself by its domain, port included, and plain URLs for plain HTTP.
    let about_a = alice.get("/api/v2/instance").await.expect(200).json();
    assert_eq!(about_a["domain"], a.domain.as_str());
    assert_eq!(
        about_a["configuration"]["urls"]["streaming"],
        format!("ws://{}", a.domain)
    );

    // 1. bob is locked; alice finds him from A, asks to follow, bob accepts on B.
    let locked = bob
        .call(
            Method::PATCH,
            "/api/v1/accounts/update_credentials",
            Some(json!({"locked": true})),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(locked["locked"], true);
    let bob_on_a = alice
        .get(&format!("/api/v1/accounts/lookup?acct={}", b.acct("bob")))
        .await
        .expect(200)
        .json();
    assert_eq!(bob_on_a["acct"], b.acct("bob"));
    assert_eq!(bob_on_a["username"], "bob");
    assert_eq!(bob_on_a["locked"], true, "A learned that bob is locked");
    let bob_id = bob_on_a["id"].as_str().unwrap().to_string();
    // Search with resolve finds the same account (no second copy).
    let found = alice
        .get(&format!(
            "/api/v2/search?resolve=true&type=accounts&q={}",
            urlencode(&format!("@{}", b.acct("bob")))
        ))
        .await
        .expect(200)
        .json();
    assert_eq!(found["accounts"][0]["id"], bob_id.as_str());

    let requested = alice
        .post(&format!("/api/v1/accounts/{bob_id}/follow"), json!({}))
        .await;
    assert_eq!(requested["requested"], true, "{requested}");
    assert_eq!(requested["following"], false);
    let request = eventually(DELIVERY, "alice's request at B", || async {
        let list = bob.get("/api/v1/follow_requests").await.expect(200).json();
        list.as_array()
            .unwrap()
            .iter()
            .find(|account| account["acct"] == a.acct("alice"))
            .cloned()
    })
    .await;
    let alice_on_b = request["id"].as_str().unwrap().to_string();
    assert_eq!(request["username"], "alice");
    // bob was told, by alice's remote account.
    eventually(DELIVERY, "bob's follow_request notification", || async {
        let told = bob.notifications().await;
        told.iter()
            .any(|n| n["type"] == "follow_request" && n["account"]["id"] == alice_on_b.as_str())
            .then_some(())
    })
    .await;
    let authorized = bob
        .post(
            &format!("/api/v1/follow_requests/{alice_on_b}/authorize"),
            json!({}),
        )
        .await;
    assert_eq!(authorized["followed_by"], true, "{authorized}");
    alice
        .relationship_until(&bob_id, "alice following bob", |r| {
            r["following"] == true && r["requested"] == false
        })
        .await;
    // bob is no longer asked.
    let pending = bob.get("/api/v1/follow_requests").await.expect(200).json();
    assert_eq!(pending, json!([]));

    // bob follows alice back (she is not locked: accepted by A at once), and alice follows
    // carol, whose posts show when bob's should no longer reach alice.
    let following = bob
        .post(&format!("/api/v1/accounts/{alice_on_b}/follow"), json!({}))
        .await;
    assert!(
        following["following"] == true || following["requested"] == true,
        "{following}"
    );
    bob.relationship_until(&alice_on_b, "bob following alice", |r| {
        r["following"] == true && r["followed_by"] == true
    })
    .await;
    eventually(DELIVERY, "alice's follow notification", || async {
        let told = alice.notifications().await;
        told.iter()
            .any(|n| {
                n["type"] == "follow"
                    && n["account"]["id"] == bob_id.as_str()
                    && n["account"]["acct"] == b.acct("bob")
            })
            .then_some(())
    })
    .await;
    let carol_on_a = alice
        .get(&format!("/api/v1/accounts/lookup?acct={}", b.acct("carol")))
        .await
        .expect(200)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    alice
        .post(&format!("/api/v1/accounts/{carol_on_a}/follow"), json!({}))
        .await;
    alice
        .relationship_until(&carol_on_a, "alice following carol", |r| {
            r["following"] == true
        })
        .await;
    eprintln!("step 1 (follows) done at {:?}", started.elapsed());

    // 2. bob posts publicly and to his followers only: both reach alice's home and stream.
    let mut stream = alice.stream(&a).await;
    let public_b = bob
        .status(json!({"status": "Hello from B", "visibility": "public"}))
        .await;
    bob.status(json!({"status": "Only for my followers", "visibility": "private"}))
        .await;
    let public_a = alice.home_has("Hello from B").await;
    let private_a = alice.home_has("Only for my followers").await;
    assert_eq!(public_a["account"]["acct"], b.acct("bob"));
    assert_eq!(public_a["visibility"], "public");
    assert_eq!(private_a["visibility"], "private");
    assert_eq!(private_a["account"]["id"], bob_id.as_str());
    // A shows bob's posts under B's ids and links, as B itself does.
    let public_on_b = bob
        .get(&format!("/api/v1/statuses/{public_b}"))
        .await
        .expect(200)
        .json();
    assert_eq!(public_a["uri"], public_on_b["uri"]);
    assert_eq!(public_a["url"], public_on_b["url"]);
    assert_eq!(public_a["account"]["url"], public_on_b["account"]["url"]);
    assert!(
        public_on_b["uri"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{}/", b.domain)),
        "{}",
        public_on_b["uri"]
    );
    let public_id = public_a["id"].as_str().unwrap().to_string();
    let mut streamed = Vec::new();
    while streamed.len() < 2 {
        let update = next_status(&mut stream, "update", "bob's posts").await;
        assert_eq!(update["account"]["acct"], b.acct("bob"));
        streamed.push(update["id"].as_str().unwrap().to_string());
    }
    streamed.sort();
    let mut expected = vec![
        public_id.clone(),
        private_a["id"].as_str().unwrap().to_string(),
    ];
    expected.sort();
    assert_eq!(streamed, expected, "both posts streamed to alice");
    eprintln!("step 2 (posts) done at {:?}", started.elapsed());

    // 3. alice replies (mentioning bob), favourites and boosts: bob is notified of each,
    // by alice as a remote account.
    let reply_a = alice
        .status(json!({
            "status": format!("@{} Nice to meet you!", b.acct("bob")),
            "in_reply_to_id": public_id,
        }))
        .await;
    alice
        .post(
            &format!("/api/v1/statuses/{public_id}/favourite"),
            json!({}),
        )
        .await;
    let reblog = alice
        .post(&format!("/api/v1/statuses/{public_id}/reblog"), json!({}))
        .await;
    assert_eq!(reblog["reblog"]["id"], public_id.as_str());
    let notes = eventually(DELIVERY, "bob's three notifications", || async {
        let all = bob.notifications().await;
        let has = |t: &str| all.iter().any(|n| n["type"] == t);
        (has("mention") && has("favourite") && has("reblog")).then_some(all)
    })
    .await;
    for kind in ["mention", "favourite", "reblog"] {
        let n = notes.iter().find(|n| n["type"] == kind).unwrap();
        assert_eq!(n["account"]["acct"], a.acct("alice"), "{kind}: {n}");
        assert_eq!(n["account"]["id"], alice_on_b.as_str(), "{kind}");
        match kind {
            "mention" => {
                assert!(content_has(&n["status"], "Nice to meet you!"), "{n}");
                assert_eq!(n["status"]["in_reply_to_id"], public_b.as_str());
                assert_eq!(n["status"]["account"]["acct"], a.acct("alice"));
            }
            _ => assert_eq!(n["status"]["id"], public_b.as_str(), "{kind}: {n}"),
        }
    }
    // Counted on bob's post as B shows it.
    let counted = eventually(DELIVERY, "bob's post counted", || async {
        let s = bob
            .get(&format!("/api/v1/statuses/{public_b}"))
            .await
            .expect(200)
            .json();
        (s["favourites_count"] == 1 && s["reblogs_count"] == 1 && s["replies_count"] == 1)
            .then_some(s)
    })
    .await;
    assert!(content_has(&counted, "Hello from B"));
    // The thread is whole on both sides: bob sees alice's reply under his post, and A
    // links her reply to bob's post.
    let thread_b = bob
        .get(&format!("/api/v1/statuses/{public_b}/context"))
        .await
        .expect(200)
        .json();
    let descendants = thread_b["descendants"].as_array().unwrap();
    assert_eq!(descendants.len(), 1, "{thread_b}");
    assert_eq!(descendants[0]["account"]["acct"], a.acct("alice"));
    let reply_on_a = alice
        .get(&format!("/api/v1/statuses/{reply_a}"))
        .await
        .expect(200)
        .json();
    assert_eq!(reply_on_a["in_reply_to_id"], public_id.as_str());
    assert_eq!(reply_on_a["in_reply_to_account_id"], bob_id.as_str());
    assert_eq!(reply_on_a["mentions"][0]["acct"], b.acct("bob"));
    assert_eq!(reply_on_a["mentions"][0]["id"], bob_id.as_str());
    // Both servers name the reply by the same ActivityPub id.
    assert_eq!(descendants[0]["uri"], reply_on_a["uri"]);
    eprintln!("step 3 (interactions) done at {:?}", started.elapsed());

    // 4. bob edits: alice sees the new text, `edited_at` and a `status.update`; then he
    // deletes: gone from her home and 404 on A.
    bob.call(
        Method::PUT,
        &format!("/api/v1/statuses/{public_b}"),
        Some(json!({"status": "Hello from B, edited"})),
    )
    .await
    .expect(200);
    let edited = eventually(DELIVERY, "the edit at A", || async {
        let s = alice
            .get(&format!("/api/v1/statuses/{public_id}"))
            .await
            .expect(200)
            .json();
        content_has(&s, "edited").then_some(s)
    })
    .await;
    assert!(edited["edited_at"].is_string(), "{edited}");
    let history = alice
        .get(&format!("/api/v1/statuses/{public_id}/history"))
        .await
        .expect(200)
        .json();
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    let updated = next_status(&mut stream, "status.update", "bob's edit").await;
    assert_eq!(updated["id"], public_id.as_str());
    assert!(content_has(&updated, "edited"), "{updated}");
    alice.home_has("Hello from B, edited").await;

    bob.call(
        Method::DELETE,
        &format!("/api/v1/statuses/{public_b}"),
        None,
    )
    .await
    .expect(200);
    eventually(DELIVERY, "the deletion at A", || async {
        (alice
            .get(&format!("/api/v1/statuses/{public_id}"))
            .await
            .status
            == 404)
            .then_some(())
    })
    .await;
    let deleted = next_event(&mut stream, "delete", "bob's deletion").await;
    assert_eq!(deleted, public_id, "a delete's payload is the id");
    let home = alice.home().await;
    assert!(
        !home
            .iter()
            .any(|s| s["id"] == public_id.as_str() || s["reblog"]["id"] == public_id.as_str()),
        "neither the post nor alice's boost of it stay in her home: {home:?}"
    );
    eprintln!("step 4 (edit, delete) done at {:?}", started.elapsed());

    // 5. alice blocks bob: the follows end both ways (on both servers), and bob's next
    // posts never reach her while carol's, posted after them, do.
    let blocked = alice
        .post(&format!("/api/v1/accounts/{bob_id}/block"), json!({}))
        .await;
    assert_eq!(blocked["blocking"], true);
    assert_eq!(blocked["following"], false);
    assert_eq!(blocked["followed_by"], false);
    bob.relationship_until(&alice_on_b, "the block's effects at B", |r| {
        r["following"] == false && r["followed_by"] == false && r["blocked_by"] == true
    })
    .await;
    bob.status(json!({"status": "Anyone still there?", "visibility": "public"}))
        .await;
    bob.status(json!({
        "status": format!("@{} are you there?", a.acct("alice")),
        "visibility": "public",
    }))
    .await;
    b_user_posts(&carol, "Carol after the block").await;
    alice.home_has("Carol after the block").await;
    let carol_update = next_status(&mut stream, "update", "carol's post").await;
    assert!(content_has(&carol_update, "Carol after the block"));
    let home = alice.home().await;
    assert!(
        !home.iter().any(|s| s["account"]["id"] == bob_id.as_str()),
        "nothing of bob's in alice's home: {home:?}"
    );
    let notifications = alice.notifications().await;
    assert!(
        !notifications
            .iter()
            .any(|n| n["account"]["id"] == bob_id.as_str() && n["type"] == "mention"),
        "no mention from a blocked account: {notifications:?}"
    );
    let relationship = alice.relationship(&bob_id).await;
    assert_eq!(relationship["blocking"], true);
    assert_eq!(relationship["following"], false);
    assert_eq!(relationship["followed_by"], false);
    eprintln!("two-server scenario passed in {:?}", started.elapsed());
}

async fn b_user_posts(user: &Client, text: &str) {
    user.status(json!({"status": text, "visibility": "public"}))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn undoing_and_profile_changes_are_seen_on_the_other_server() {
    let (a, b) = tokio::join!(Instance::start(), Instance::start());
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    let carol = b.user("carol").await;
    let lookup = |name: &'static str| {
        let (alice, acct) = (alice.clone(), b.acct(name));
        async move {
            alice
                .get(&format!("/api/v1/accounts/lookup?acct={acct}"))
                .await
                .expect(200)
                .json()
        }
    };

    // bob is not locked: B accepts alice's follow at once.
    let bob_id = lookup("bob").await["id"].as_str().unwrap().to_string();
    alice
        .post(&format!("/api/v1/accounts/{bob_id}/follow"), json!({}))
        .await;
    alice
        .relationship_until(&bob_id, "B accepting alice's follow", |r| {
            r["following"] == true
        })
        .await;
    let post_b = bob
        .status(json!({"status": "Undo me", "visibility": "public"}))
        .await;
    let post_a = alice.home_has("Undo me").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A favourite and a boost, then both undone: B counts and notifies, then forgets.
    alice
        .post(&format!("/api/v1/statuses/{post_a}/favourite"), json!({}))
        .await;
    alice
        .post(&format!("/api/v1/statuses/{post_a}/reblog"), json!({}))
        .await;
    let counts = |fav: i64, boosts: i64| {
        let (bob, post_b) = (bob.clone(), post_b.clone());
        async move {
            eventually(
                DELIVERY,
                &format!("{fav} favourites, {boosts} boosts at B"),
                || async {
                    let s = bob
                        .get(&format!("/api/v1/statuses/{post_b}"))
                        .await
                        .expect(200)
                        .json();
                    (s["favourites_count"] == fav && s["reblogs_count"] == boosts).then_some(())
                },
            )
            .await
        }
    };
    counts(1, 1).await;
    let kinds = |all: &[Value]| {
        let mut k: Vec<String> = all
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    };
    // The counts change with the stored favourite and boost; their notifications follow.
    let notified = |want: &'static [&'static str], what: &'static str| {
        let bob = bob.clone();
        async move {
            eventually(DELIVERY, what, || async {
                (kinds(&bob.notifications().await) == want).then_some(())
            })
            .await
        }
    };
    notified(
        &["favourite", "follow", "reblog"],
        "bob notified of the favourite and the boost",
    )
    .await;
    alice
        .post(&format!("/api/v1/statuses/{post_a}/unfavourite"), json!({}))
        .await;
    alice
        .post(&format!("/api/v1/statuses/{post_a}/unreblog"), json!({}))
        .await;
    counts(0, 0).await;
    notified(
        &["follow"],
        "the undone actions' notifications gone with them",
    )
    .await;

    // bob renames himself: A shows the new name.
    bob.call(
        Method::PATCH,
        "/api/v1/accounts/update_credentials",
        Some(json!({"display_name": "Bob from B"})),
    )
    .await
    .expect(200);
    eventually(DELIVERY, "bob's new name at A", || async {
        let account = alice
            .get(&format!("/api/v1/accounts/{bob_id}"))
            .await
            .expect(200)
            .json();
        (account["display_name"] == "Bob from B").then_some(())
    })
    .await;

    // alice unfollows: bob loses a follower on B.
    let unfollowed = alice
        .post(&format!("/api/v1/accounts/{bob_id}/unfollow"), json!({}))
        .await;
    assert_eq!(unfollowed["following"], false);
    let followers = || async {
        bob.get(&format!("/api/v1/accounts/{}/followers", bob.account_id))
            .await
            .expect(200)
            .json()
    };
    eventually(DELIVERY, "alice gone from bob's followers", || async {
        (followers().await == json!([])).then_some(())
    })
    .await;

    // carol is locked and rejects alice's request: A no longer shows it as pending.
    carol
        .call(
            Method::PATCH,
            "/api/v1/accounts/update_credentials",
            Some(json!({"locked": true})),
        )
        .await
        .expect(200);
    let carol_id = lookup("carol").await["id"].as_str().unwrap().to_string();
    let requested = alice
        .post(&format!("/api/v1/accounts/{carol_id}/follow"), json!({}))
        .await;
    assert_eq!(requested["requested"], true);
    let request = eventually(DELIVERY, "alice's request to carol", || async {
        let list = carol
            .get("/api/v1/follow_requests")
            .await
            .expect(200)
            .json();
        list.as_array().unwrap().first().cloned()
    })
    .await;
    carol
        .post(
            &format!(
                "/api/v1/follow_requests/{}/reject",
                request["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    alice
        .relationship_until(&carol_id, "carol's rejection at A", |r| {
            r["requested"] == false && r["following"] == false
        })
        .await;
}
