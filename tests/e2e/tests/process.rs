//! The operator as a process, as it runs in a pod: leader election between two replicas,
//! convergence after being killed mid-reconcile again and again, and logs that hold no
//! credential.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fedi_e2e::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PostParams};

const TIMEOUT: Duration = Duration::from_secs(120);

struct Replica {
    child: Child,
    metrics: String,
}

impl Replica {
    /// A replica serving only `namespace` (which also holds its Lease), so that the tests of
    /// this file, running side by side, never reconcile each other's instances.
    fn start(namespace: &str, identity: &str, leader_election: bool) -> Self {
        Self::start_logging(namespace, identity, leader_election, Stdio::null())
    }

    /// Like `start`, with the replica's logs (JSON, debug level) written to `log`.
    fn start_logging(
        namespace: &str,
        identity: &str,
        leader_election: bool,
        log: impl Into<Stdio>,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = operator_bin();
        let child = Command::new(&bin)
            .args(["--http-addr", &format!("127.0.0.1:{port}")])
            .args(["--namespaces", namespace])
            .env("POD_NAMESPACE", namespace)
            .env("POD_NAME", identity)
            .env("FEDI_OPERATOR_LEASE", "fedi-operator-e2e")
            .env("FEDI_OPERATOR_LEADER_ELECTION", leader_election.to_string())
            .env("RUST_LOG", "debug")
            .arg("--log-json")
            .stdout(log.into())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): build it with `cargo build --bin fedi-operator`")
            });
        Self {
            child,
            metrics: format!("http://127.0.0.1:{port}/metrics"),
        }
    }

    /// A counter or gauge of this replica's /metrics, or None while it does not answer.
    async fn metric(&self, name: &str) -> Option<u64> {
        let text = reqwest::get(&self.metrics).await.ok()?.text().await.ok()?;
        let prefix = format!("{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
    }

    /// The HTTP status of /readyz, or None while it does not answer.
    async fn readyz(&self) -> Option<u16> {
        let url = self.metrics.replace("/metrics", "/readyz");
        Some(reqwest::get(url).await.ok()?.status().as_u16())
    }

    /// Reconciles this replica has started.
    async fn reconciles(&self) -> Option<u64> {
        self.metric("fedi_operator_reconciles_total").await
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The minimal sample, on the test services, named `name`, for namespace `ns`.
async fn minimal_named(ns: &TestNamespace, name: &str) -> FediInstance {
    let mut fedi = sample("minimal");
    fedi.metadata.name = Some(name.into());
    use_test_services(ns, &mut fedi).await;
    fedi
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_follower_takes_over() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "leader").await;
    let mut replicas = [
        ("replica-a", Replica::start(&ns.name, "replica-a", true)),
        ("replica-b", Replica::start(&ns.name, "replica-b", true)),
    ];
    let api = ns.api::<FediInstance>();
    api.create(&PostParams::default(), &minimal_named(&ns, "leader").await)
        .await
        .unwrap();

    let leases = ns.api::<Lease>();
    let lease_holder = || async {
        leases
            .get_opt("fedi-operator-e2e")
            .await
            .ok()??
            .spec?
            .holder_identity
    };
    let holder = await_until(TIMEOUT, "a lease holder", lease_holder)
        .await
        .unwrap();
    await_instance(&api, "leader", TIMEOUT, "the instance reconciled", |f| {
        f.status.is_some()
    })
    .await
    .unwrap();
    let leader = replicas
        .iter()
        .position(|(id, _)| *id == holder)
        .expect("a replica holds it");
    let follower = 1 - leader;
    assert!(
        replicas[leader].1.reconciles().await.unwrap_or(0) > 0,
        "the leader reconciles"
    );
    assert_eq!(
        replicas[follower].1.reconciles().await,
        Some(0),
        "a follower must not reconcile"
    );
    await_until(
        TIMEOUT,
        "the leader to count the instance it manages",
        || async {
            (replicas[leader]
                .1
                .metric("fedi_operator_managed_instances")
                .await?
                >= 1)
                .then_some(())
        },
    )
    .await
    .unwrap();

    // The leader dies without releasing the lease: the follower takes over once it expires.
    replicas[leader].1.kill();
    let survivor = replicas[follower].0;
    await_until(TIMEOUT, "the follower to take the lease", || async {
        (lease_holder().await? == survivor).then_some(())
    })
    .await
    .unwrap();
    await_until(TIMEOUT, "the new leader to reconcile", || async {
        (replicas[follower].1.reconciles().await? > 0).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn killed_mid_reconcile_ten_times_it_still_converges_without_duplicates() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "kill").await;
    let api = ns.api::<FediInstance>();
    api.create(&PostParams::default(), &minimal_named(&ns, "kill").await)
        .await
        .unwrap();
    for round in 0..10u64 {
        let mut replica = Replica::start(&ns.name, "killed", false);
        // Spread the kills over start-up, the first applies and the status write.
        tokio::time::sleep(Duration::from_millis(150 + round * 90)).await;
        replica.kill();
    }
    let _survivor = Replica::start(&ns.name, "survivor", false);
    let ready = |f: &FediInstance| {
        f.condition(fedi_operator::status::READY)
            .is_some_and(|c| c.status == "True")
    };
    await_instance(&api, "kill", TIMEOUT, "Ready after the kills", ready)
        .await
        .unwrap();

    let names = |items: Vec<String>| {
        let mut n = items;
        n.sort();
        n
    };
    let deployments = ns
        .api::<Deployment>()
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        names(
            deployments
                .items
                .iter()
                .map(|d| d.metadata.name.clone().unwrap())
                .collect()
        ),
        ["kill-api", "kill-streamer", "kill-worker-default"]
    );
    let secrets = ns
        .api::<Secret>()
        .list(&ListParams::default())
        .await
        .unwrap();
    let keys: Vec<_> = secrets
        .items
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .filter(|n| n.ends_with("-keys"))
        .collect();
    assert_eq!(keys, ["kill-keys"], "exactly one Secret of generated keys");
}

#[tokio::test]
async fn with_a_namespace_list_only_those_namespaces_are_served() {
    let client = client().await;
    install_crd(&client).await;
    let served = TestNamespace::new(&client, "served").await;
    let ignored = TestNamespace::new(&client, "ignored").await;
    // Replica::start passes --namespaces with the namespace it is given.
    let operator = Replica::start(&served.name, "scoped", false);
    await_until(
        TIMEOUT,
        "/readyz to answer 200 once the caches are synced",
        || async { (operator.readyz().await? == 200).then_some(()) },
    )
    .await
    .unwrap();
    for ns in [&served, &ignored] {
        ns.api::<FediInstance>()
            .create(&PostParams::default(), &minimal_named(ns, "scoped").await)
            .await
            .unwrap();
    }
    let served_api = served.api::<FediInstance>();
    await_instance(
        &served_api,
        "scoped",
        TIMEOUT,
        "the served instance reconciled",
        |f| f.status.is_some(),
    )
    .await
    .unwrap();
    // The served one has gone through a whole reconcile; the other must still be untouched.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let other = ignored.api::<FediInstance>().get("scoped").await.unwrap();
    assert!(
        other.status.is_none(),
        "an instance outside --namespaces must not be reconciled"
    );
    assert!(
        ignored
            .api::<Deployment>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn credentials_appear_in_no_config_map_status_event_or_log() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "leak").await;
    let log_path = std::env::temp_dir().join(format!("fedi-operator-{}.log", ns.name));
    let log = std::fs::File::create(&log_path).unwrap();
    let _operator = Replica::start_logging(&ns.name, "leak", false, log);

    // Managed Redis and S3 (generated credentials), the test services' S3 and a database
    // password only a leak could reveal.
    let mut fedi = minimal_named(&ns, "leak").await;
    fedi.spec.redis = Default::default();
    let secrets = ns.api::<Secret>();
    merge_patch(
        &secrets,
        "test-db",
        serde_json::json!({"stringData": {"password": "pw-7f3a9c-must-not-leak"}}),
    )
    .await;
    let api = ns.api::<FediInstance>();
    api.create(&PostParams::default(), &fedi).await.unwrap();
    let all_observed = |f: &FediInstance| {
        ["DatabaseReady", "RedisReady", "StorageReady", "SearchReady"]
            .iter()
            .all(|t| f.condition(t).is_some())
    };
    await_instance(
        &api,
        "leak",
        TIMEOUT,
        "every dependency observed",
        all_observed,
    )
    .await
    .unwrap();
    // The instance's generated keys and the managed Redis's password are made by now.
    await_until(TIMEOUT, "the generated Secrets", || async {
        let names: Vec<String> = secrets
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect();
        ["leak-keys", "leak-redis"]
            .iter()
            .all(|n| names.iter().any(|m| m == n))
            .then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let values = leaks::secret_values(&client, &ns.name).await;
    assert!(values.iter().any(|v| v == "pw-7f3a9c-must-not-leak"));
    let mut haystack = leaks::Haystack::of_namespace(&client, &ns.name).await;
    haystack.add(
        "the operator's log",
        std::fs::read_to_string(&log_path).unwrap(),
    );
    assert!(haystack.count("Deployment") + haystack.count("StatefulSet") > 0);
    haystack.assert_none_of(&values);
    let _ = std::fs::remove_file(&log_path);
}

/// A `redis-server` of this test with a password, killed when dropped.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    async fn start(password: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                password,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let pong = || {
            Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "PING"])
                .env("REDISCLI_AUTH", password)
                .output()
                .ok()
                .filter(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
        };
        await_until(
            Duration::from_secs(10),
            "redis-server to answer",
            || async { pong().map(|_| ()) },
        )
        .await
        .unwrap();
        Self { child, port }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis URL carrying its password, through a whole rollout (migration and reindex Jobs)
/// and a refused password (error messages, events, warnings in the log): neither the URL
/// nor the password alone appears anywhere but in the Secret.
#[tokio::test]
async fn a_redis_url_with_its_password_leaks_nowhere() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "urlleak").await;
    let log_path = std::env::temp_dir().join(format!("fedi-operator-{}.log", ns.name));
    let log = std::fs::File::create(&log_path).unwrap();
    let _operator = Replica::start_logging(&ns.name, "urlleak", false, log);

    let redis = OwnRedis::start("redis-pw-5b1e9d-must-not-leak").await;
    let right = format!(
        "redis://:redis-pw-5b1e9d-must-not-leak@127.0.0.1:{}/0",
        redis.port
    );
    let wrong = format!(
        "redis://:redis-wrong-33c1a7-secret@127.0.0.1:{}/0",
        redis.port
    );
    let mut fedi = minimal_named(&ns, "urlleak").await;
    let mut spec = serde_json::to_value(&fedi.spec).unwrap();
    spec["search"] = serde_json::json!({"external": {
        "url": service_env("FEDI_TEST_SEARCH_URL"),
        "credentialsSecretRef": {"name": "test-search"}}});
    fedi.spec = serde_json::from_value(spec).unwrap();
    let secrets = ns.api::<Secret>();
    merge_patch(
        &secrets,
        "test-redis",
        serde_json::json!({"stringData": {"url": right}}),
    )
    .await;
    let search: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "test-search"},
        "stringData": {"username": "fedi", "password": "search-pw-8d2f41-must-not-leak"}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &search)
        .await
        .unwrap();
    let api = ns.api::<FediInstance>();
    api.create(&PostParams::default(), &fedi).await.unwrap();
    await_instance(&api, "urlleak", TIMEOUT, "Ready and indexed", |f| {
        ready_at(1)(f)
            && f.condition("SearchIndexed")
                .is_some_and(|c| c.status == "True")
    })
    .await
    .unwrap();

    merge_patch(
        &secrets,
        "test-redis",
        serde_json::json!({"stringData": {"url": wrong}}),
    )
    .await;
    await_instance(&api, "urlleak", TIMEOUT, "the password refused", |f| {
        f.condition("RedisReady")
            .is_some_and(|c| c.reason == "AuthenticationFailed")
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut values = leaks::secret_values(&client, &ns.name).await;
    assert!(values.contains(&wrong), "the Secret holds the current URL");
    values.extend(
        [right.clone(), wrong.clone()]
            .iter()
            .filter_map(|u| leaks::url_password(u)),
    );
    values.push("search-pw-8d2f41-must-not-leak".into());
    let mut haystack = leaks::Haystack::of_namespace(&client, &ns.name).await;
    haystack.add(
        "the operator's log",
        std::fs::read_to_string(&log_path).unwrap(),
    );
    // The migration and reindex Jobs are among what is searched.
    assert!(haystack.count("Job") >= 2, "{} Jobs", haystack.count("Job"));
    haystack.assert_none_of(&values);
    let _ = std::fs::remove_file(&log_path);
}
