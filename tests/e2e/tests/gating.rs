//! A dependency that is not ready gates the server: a new spec (here a new version, hence a
//! new image) leaves the api, streamer and worker Deployments on their old template until
//! the dependency recovers, and then rolls out. Each failure is reported with a reason and a
//! message a person can act on. The Redis servers are this test's own (`redis-server` on
//! free ports), never the shared ones; S3 and OpenSearch are the test services, reached with
//! bad credentials or at a dead address.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fedi_e2e::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);
const SERVERS: [&str; 3] = ["minimal-api", "minimal-streamer", "minimal-worker-default"];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of this test, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(extra: &[&str]) -> Self {
        Self::start_on(free_port(), extra)
    }

    /// A `redis-server` of this test on `port`.
    fn start_on(port: u16, extra: &[&str]) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (make services-up installs it)");
        Self { child, port }
    }

    /// `redis-cli` against this server (the e2e crate has no Redis client of its own).
    fn cli(&self, password: Option<&str>, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(p) = password {
            cmd.env("REDISCLI_AUTH", p);
        }
        let out = cmd.args(args).stderr(Stdio::null()).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn ready(&self, password: Option<&str>) {
        await_until(
            Duration::from_secs(10),
            "redis-server to answer",
            || async {
                self.cli(password, &["PING"])
                    .filter(|o| o.trim() == "PONG")
                    .map(|_| ())
            },
        )
        .await
        .unwrap();
    }

    async fn cluster_ok(&self) {
        await_until(Duration::from_secs(30), "cluster_state:ok", || async {
            self.cli(None, &["CLUSTER", "INFO"])
                .filter(|o| o.contains("cluster_state:ok"))
                .map(|_| ())
        })
        .await
        .unwrap();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The pod templates of the server Deployments.
async fn templates(api: &Api<Deployment>) -> BTreeMap<&'static str, serde_json::Value> {
    let mut out = BTreeMap::new();
    for name in SERVERS {
        let d = api.get(name).await.unwrap();
        out.insert(name, serde_json::to_value(d.spec.template).unwrap());
    }
    out
}

fn images(templates: &BTreeMap<&'static str, serde_json::Value>) -> Vec<String> {
    templates
        .values()
        .map(|t| {
            t["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn condition(f: &FediInstance, type_: &str) -> (String, String, String) {
    f.condition(type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// Waits for `type_` to be False for `reason`, then returns its message.
async fn failed(api: &Api<FediInstance>, type_: &'static str, reason: &'static str) -> String {
    let f = await_instance(api, "minimal", TIMEOUT, reason, |f| {
        let (status, r, _) = condition(f, type_);
        status == "False" && r == reason
    })
    .await
    .unwrap();
    assert_eq!(condition(&f, "Ready").1, "WaitingForDependencies");
    condition(&f, type_).2
}

/// While `type_` is False: version 0.2.0 is asked for, reconciled, and the server
/// Deployments keep their template. Returns the generation of that spec.
async fn new_version_is_held_back(
    ns: &TestNamespace,
    api: &Api<FediInstance>,
    type_: &'static str,
) -> i64 {
    let deployments = ns.api::<Deployment>();
    let before = templates(&deployments).await;
    assert!(images(&before).iter().all(|i| i.ends_with(":0.1.0")));
    let patched = merge_patch(api, "minimal", json!({"spec": {"version": "0.2.0"}})).await;
    let generation = patched.metadata.generation.unwrap();
    await_instance(api, "minimal", TIMEOUT, "the new spec observed", |f| {
        f.status.as_ref().and_then(|s| s.observed_generation) == Some(generation)
            && condition(f, type_).0 == "False"
    })
    .await
    .unwrap();
    // A few reconciles more (Secret watch, requeues) change nothing either.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        templates(&deployments).await,
        before,
        "the server rolled out while {type_} was False"
    );
    generation
}

/// Once `type_` is True again, the held-back version rolls out.
async fn rolls_out_after_recovery(
    ns: &TestNamespace,
    api: &Api<FediInstance>,
    type_: &'static str,
    generation: i64,
) {
    let f = await_instance(
        api,
        "minimal",
        TIMEOUT,
        "Ready on 0.2.0",
        ready_at(generation),
    )
    .await
    .unwrap();
    assert_eq!(condition(&f, type_).0, "True");
    let after = templates(&ns.api::<Deployment>()).await;
    assert!(
        images(&after).iter().all(|i| i.ends_with(":0.2.0")),
        "{:?}",
        images(&after)
    );
}

async fn set_secret(ns: &TestNamespace, name: &str, data: serde_json::Value) {
    merge_patch(&ns.api::<Secret>(), name, json!({"stringData": data})).await;
}

#[tokio::test]
async fn bad_storage_credentials_hold_the_rollout_until_fixed() {
    let client = client().await;
    let (ns, api) = create_instance(&client, "gate-s3", |_| {}).await;
    await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
        .await
        .unwrap();
    let secret = service_env("FEDI_TEST_S3_SECRET_KEY");
    set_secret(
        &ns,
        "test-s3",
        json!({"secretAccessKey": "gate-wrong-secret"}),
    )
    .await;
    let message = failed(&api, "StorageReady", "AccessDenied").await;
    assert!(!message.contains("gate-wrong-secret"), "{message}");
    assert!(message.contains(&ns.name), "names the bucket: {message}");
    let generation = new_version_is_held_back(&ns, &api, "StorageReady").await;
    set_secret(&ns, "test-s3", json!({"secretAccessKey": secret})).await;
    rolls_out_after_recovery(&ns, &api, "StorageReady", generation).await;
}

/// An instance whose external Redis is `url` (in the Secret `test-redis`).
async fn on_redis(
    client: &kube::Client,
    prefix: &str,
    url: String,
    cluster: bool,
) -> (TestNamespace, Api<FediInstance>) {
    let (ns, api) = create_instance(client, prefix, |f| {
        let mut spec = serde_json::to_value(&f.spec).unwrap();
        if cluster {
            spec["redis"]["external"]["mode"] = json!("cluster");
        }
        f.spec = serde_json::from_value(spec).unwrap();
    })
    .await;
    // create_instance made the Secret for the shared Redis: the test's own replaces it
    // before the first reconcile can matter (the instance is not Ready before either).
    set_secret(&ns, "test-redis", json!({"url": url})).await;
    (ns, api)
}

#[tokio::test]
async fn a_wrong_redis_password_holds_the_rollout_until_fixed() {
    let client = client().await;
    let redis = Redis::start(&["--requirepass", "gate-redis-right"]);
    redis.ready(Some("gate-redis-right")).await;
    let right = format!("redis://:gate-redis-right@127.0.0.1:{}", redis.port);
    let (ns, api) = on_redis(&client, "gate-redis", right.clone(), false).await;
    let f = await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
        .await
        .unwrap();
    assert_eq!(condition(&f, "RedisReady").1, "Ready");

    let wrong = format!("redis://:gate-redis-wrong@127.0.0.1:{}", redis.port);
    set_secret(&ns, "test-redis", json!({"url": wrong})).await;
    let message = failed(&api, "RedisReady", "AuthenticationFailed").await;
    assert!(
        message.contains(&format!("127.0.0.1:{}", redis.port)),
        "{message}"
    );
    assert!(message.contains("password"), "says what to fix: {message}");
    assert!(
        message.contains("Secret test-redis"),
        "says where: {message}"
    );
    assert!(!message.contains("gate-redis"), "no password: {message}");
    let generation = new_version_is_held_back(&ns, &api, "RedisReady").await;
    set_secret(&ns, "test-redis", json!({"url": right})).await;
    rolls_out_after_recovery(&ns, &api, "RedisReady", generation).await;
}

#[tokio::test]
async fn an_unreachable_redis_is_reported_with_its_address_and_recovers() {
    let client = client().await;
    let dead = free_port();
    let (ns, api) = on_redis(
        &client,
        "gate-noredis",
        format!("redis://127.0.0.1:{dead}"),
        false,
    )
    .await;
    let message = failed(&api, "RedisReady", "RedisUnreachable").await;
    assert!(message.contains(&format!("127.0.0.1:{dead}")), "{message}");
    assert!(
        ns.api::<Deployment>()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no server before Redis answers"
    );
    let redis = Redis::start(&[]);
    redis.ready(None).await;
    set_secret(
        &ns,
        "test-redis",
        json!({"url": format!("redis://127.0.0.1:{}", redis.port)}),
    )
    .await;
    let f = await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
        .await
        .unwrap();
    assert_eq!(condition(&f, "RedisReady").0, "True");
}

#[tokio::test]
async fn a_redis_cluster_in_state_fail_holds_the_rollout_until_it_recovers() {
    let client = client().await;
    // Two masters, half the slots each: with one gone the other is in the minority and
    // reports cluster_state:fail once the node timeout passes.
    let cluster = ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"];
    let dir = std::env::temp_dir().join(format!("gate-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = |n: u8| {
        dir.join(format!("nodes-{n}.conf"))
            .to_string_lossy()
            .into_owned()
    };
    let (conf_a, conf_b) = (conf(1), conf(2));
    let a = Redis::start(&[&cluster[..], &["--cluster-config-file", &conf_a]].concat());
    let mut b = Redis::start(&[&cluster[..], &["--cluster-config-file", &conf_b]].concat());
    a.ready(None).await;
    b.ready(None).await;
    a.cli(None, &["CLUSTER", "ADDSLOTSRANGE", "0", "8191"])
        .unwrap();
    b.cli(None, &["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"])
        .unwrap();
    a.cli(None, &["CLUSTER", "MEET", "127.0.0.1", &b.port.to_string()])
        .unwrap();
    a.cluster_ok().await;
    b.cluster_ok().await;
    let urls = format!("redis://127.0.0.1:{},redis://127.0.0.1:{}", a.port, b.port);
    let (ns, api) = on_redis(&client, "gate-rcluster", urls, true).await;
    let f = await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
        .await
        .unwrap();
    assert_eq!(condition(&f, "RedisReady").1, "ClusterOk");

    b.kill();
    // A probe within the node timeout still sees cluster_state:ok (with b unreachable, a
    // Degraded but ready dependency, re-checked at the resync): once the survivor says
    // fail, a change to the Secret stands for that resync.
    await_until(Duration::from_secs(30), "cluster_state:fail", || async {
        a.cli(None, &["CLUSTER", "INFO"])
            .filter(|o| o.contains("cluster_state:fail"))
            .map(|_| ())
    })
    .await
    .unwrap();
    merge_patch(
        &ns.api::<Secret>(),
        "test-redis",
        json!({"metadata": {"annotations": {"e2e.fedi.dev/touched": "0"}}}),
    )
    .await;
    let message = failed(&api, "RedisReady", "ClusterFail").await;
    assert!(message.contains("cluster_state:fail"), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", a.port)),
        "{message}"
    );
    let generation = new_version_is_held_back(&ns, &api, "RedisReady").await;
    // The lost master comes back with its node file: same id, same slots.
    let b = Redis::start_on(
        b.port,
        &[&cluster[..], &["--cluster-config-file", &conf_b]].concat(),
    );
    b.ready(None).await;
    a.cluster_ok().await;
    b.cluster_ok().await;
    // The operator re-checks a waiting dependency on a change or at its resync (5 min):
    // a change to the Secret stands for the next of either.
    merge_patch(
        &ns.api::<Secret>(),
        "test-redis",
        json!({"metadata": {"annotations": {"e2e.fedi.dev/touched": "1"}}}),
    )
    .await;
    rolls_out_after_recovery(&ns, &api, "RedisReady", generation).await;
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An HTTP server answering every request with a small HTML page, for the test's life.
async fn plain_http_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let page = "<html><body>It works!</body></html>";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_search_url_that_is_not_opensearch_or_unreachable_holds_the_rollout_until_fixed() {
    let client = client().await;
    let search_url = service_env("FEDI_TEST_SEARCH_URL");
    let (ns, api) = create_instance(&client, "gate-search", |f| {
        let mut spec = serde_json::to_value(&f.spec).unwrap();
        spec["search"] = json!({"external": {"url": search_url}});
        f.spec = serde_json::from_value(spec).unwrap();
    })
    .await;
    let f = await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
        .await
        .unwrap();
    let (_, reason, message) = condition(&f, "SearchReady");
    assert_eq!(reason, "Reachable");
    assert!(message.contains("opensearch"), "{message}");

    // A web server that is not OpenSearch: it accepts connections, and is still wrong.
    let web = plain_http_server().await;
    merge_patch(
        &api,
        "minimal",
        json!({"spec": {"search": {"external": {"url": format!("http://{web}")}}}}),
    )
    .await;
    let message = failed(&api, "SearchReady", "NotOpenSearch").await;
    assert!(message.contains(&web.to_string()), "{message}");
    assert!(message.contains("spec.search.external.url"), "{message}");

    let dead = free_port();
    merge_patch(
        &api,
        "minimal",
        json!({"spec": {"search": {"external": {"url": format!("http://127.0.0.1:{dead}")}}}}),
    )
    .await;
    let message = failed(&api, "SearchReady", "SearchUnreachable").await;
    assert!(message.contains(&format!("127.0.0.1:{dead}")), "{message}");
    let generation = new_version_is_held_back(&ns, &api, "SearchReady").await;
    let fixed = merge_patch(
        &api,
        "minimal",
        json!({"spec": {"search": {"external": {"url": search_url}}}}),
    )
    .await;
    assert!(fixed.metadata.generation.unwrap() > generation);
    rolls_out_after_recovery(&ns, &api, "SearchReady", fixed.metadata.generation.unwrap()).await;
}
