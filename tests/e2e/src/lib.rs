//! Helpers that keep each end-to-end test short: a client for the cluster named by
//! `KUBECONFIG`, a fresh namespace per test (deleted afterwards), CRD installation, and
//! `await_condition` with a timeout that dumps the object when it expires.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt, Resource};
use serde::Deserialize;
use serde_json::json;

pub use fedi_operator::crd::{FediInstance, FediInstanceSpec};

pub mod leaks;
pub mod played;

pub const MANAGER: &str = "fedi-e2e";

pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `fedi-operator` binary that scripts/e2e.sh builds; FEDI_OPERATOR_BIN overrides.
pub fn operator_bin() -> String {
    std::env::var("FEDI_OPERATOR_BIN").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| repo_root().join("target").to_string_lossy().into_owned());
        format!("{target}/debug/fedi-operator")
    })
}

/// A client for the cluster under test. Refuses to guess: without KUBECONFIG the e2e suite
/// would otherwise run against whatever `~/.kube/config` points at.
pub async fn client() -> Client {
    fedi_operator::install_tls_provider();
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!(
            "KUBECONFIG is not set: run the e2e suite with `make e2e` (starts the local control \
             plane) or point KUBECONFIG at a test cluster"
        );
    }
    Client::try_default()
        .await
        .expect("a client for KUBECONFIG")
}

/// Installs the CRD from `crds/` (what users apply, not what the code would generate) and
/// waits until the API server serves it.
pub async fn install_crd(client: &Client) {
    let path = repo_root().join("crds/fediinstances.yaml");
    let yaml = std::fs::read_to_string(&path).expect("crds/fediinstances.yaml");
    let crd: CustomResourceDefinition = serde_yaml::from_str(&yaml).expect("CRD YAML");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        crd.metadata.name.as_deref().unwrap(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    let name = FediInstance::crd_name();
    await_until(
        Duration::from_secs(30),
        "the CRD to be Established",
        || async {
            let crd = api.get(name).await.ok()?;
            let established = crd
                .status?
                .conditions?
                .into_iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        },
    )
    .await
    .unwrap();
}

/// Third-party CRDs (`gateway-api`, `cloudnative-pg`) installed for a test. Only the ones
/// this guard created are deleted when it drops: a cluster that had them keeps them.
pub struct ThirdPartyCrds {
    pub installed: Vec<String>,
    pub already_there: bool,
}

impl ThirdPartyCrds {
    /// Whether every CRD of `project` is served already (then nothing is installed).
    pub async fn present(client: &Client, project: &str) -> bool {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in third_party_crds(project) {
            let name = crd.metadata.name.unwrap();
            if api.get_opt(&name).await.unwrap().is_none() {
                return false;
            }
        }
        true
    }

    pub async fn install(client: &Client, project: &str) -> Self {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let mut installed = Vec::new();
        let mut already_there = true;
        for crd in third_party_crds(project) {
            let name = crd.metadata.name.clone().unwrap();
            if api.get_opt(&name).await.unwrap().is_some() {
                continue;
            }
            already_there = false;
            api.create(&PostParams::default(), &crd)
                .await
                .unwrap_or_else(|e| panic!("create CRD {name}: {e}"));
            installed.push(name.clone());
            await_until(Duration::from_secs(30), "the CRD to be Established", || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    crd.status?
                        .conditions?
                        .into_iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            })
            .await
            .unwrap();
        }
        Self {
            installed,
            already_there,
        }
    }
}

impl Drop for ThirdPartyCrds {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.installed);
        if names.is_empty() {
            return;
        }
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(client) = Client::try_default().await {
                    let api: Api<CustomResourceDefinition> = Api::all(client);
                    for name in &names {
                        let _ = api.delete(name, &DeleteParams::default()).await;
                    }
                    // Gone before the next test binary starts, so that its operator does not
                    // discover an API that is on its way out.
                    for name in &names {
                        let _ = await_until(Duration::from_secs(60), "the CRD to go", || async {
                            matches!(api.get_opt(name).await, Ok(None)).then_some(())
                        })
                        .await;
                    }
                }
            });
        })
        .join()
        .ok();
    }
}

/// The CRDs of `project` from the directory `tests/e2e/cluster/third-party-crds.sh` fills.
fn third_party_crds(project: &str) -> Vec<CustomResourceDefinition> {
    let root = std::env::var("FEDI_E2E_CRDS_DIR").unwrap_or_else(|_| {
        panic!(
            "FEDI_E2E_CRDS_DIR is not set: run the e2e suite with `make e2e`, or set it to the \
             output of tests/e2e/cluster/third-party-crds.sh"
        )
    });
    let dir = std::path::Path::new(&root).join(project);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc).unwrap();
            if value.is_null() {
                continue;
            }
            out.push(
                serde_yaml::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
            );
        }
    }
    assert!(!out.is_empty(), "no CRDs in {}", dir.display());
    out
}

/// A namespace for one test, deleted when dropped.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let suffix: u32 = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            ^ std::process::id())
            % 1_000_000;
        let name = format!("e2e-{prefix}-{suffix}");
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        Self {
            name,
            client: client.clone(),
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // On a thread with its own runtime and its own client: the test's client belongs to
        // the test's runtime, which is blocked right here while we wait.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(client) = Client::try_default().await {
                    let _ = Api::<Namespace>::all(client)
                        .delete(&name, &DeleteParams::default())
                        .await;
                }
            });
        })
        .join()
        .ok();
    }
}

pub fn instance(name: &str, spec: serde_json::Value) -> FediInstance {
    serde_json::from_value(json!({
        "apiVersion": "fedi.dev/v1alpha1",
        "kind": "FediInstance",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a FediInstance")
}

/// A sample of `config/samples/`, as users apply it.
pub fn sample(name: &str) -> FediInstance {
    let yaml =
        std::fs::read_to_string(repo_root().join(format!("config/samples/{name}.yaml"))).unwrap();
    serde_yaml::from_str(&yaml).unwrap()
}

/// Ready, for the spec of `generation`.
pub fn ready_at(generation: i64) -> impl Fn(&FediInstance) -> bool {
    move |f| {
        f.status.as_ref().and_then(|s| s.observed_generation) == Some(generation)
            && f.condition(fedi_operator::status::READY)
                .is_some_and(|c| c.status == "True")
    }
}

/// Degraded, for `reason`.
pub fn degraded(reason: &'static str) -> impl Fn(&FediInstance) -> bool {
    move |f| {
        f.condition("Degraded")
            .is_some_and(|c| c.status == "True" && c.reason == reason)
    }
}

/// A new namespace holding the minimal sample on the test services (see
/// `use_test_services`), changed by `edit`, with the in-process operator running.
pub async fn create_instance(
    client: &Client,
    prefix: &str,
    edit: impl FnOnce(&mut FediInstance),
) -> (TestNamespace, Api<FediInstance>) {
    install_crd(client).await;
    Operator::shared();
    let ns = TestNamespace::new(client, prefix).await;
    let api = ns.api::<FediInstance>();
    let mut fedi = sample("minimal");
    use_test_services(&ns, &mut fedi).await;
    edit(&mut fedi);
    api.create(&PostParams::default(), &fedi).await.unwrap();
    (ns, api)
}

/// A variable of `.local/services.env` (exported by `make e2e`).
pub fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the e2e suite with `make e2e`, which starts the test \
             services, or source .local/services.env after `make services-up`"
        )
    })
}

/// `(user, password, host, port, database)` of a `postgres://user:password@host:port/db` URL.
fn postgres_parts(url: &str) -> (String, String, String, i32, String) {
    let rest = url.strip_prefix("postgres://").expect("a postgres:// URL");
    let (auth, rest) = rest.split_once('@').expect("user and password in the URL");
    let (user, password) = auth.split_once(':').expect("a password in the URL");
    let (host_port, db) = rest.split_once('/').expect("a database in the URL");
    let (host, port) = host_port.split_once(':').expect("a port in the URL");
    (
        user.into(),
        password.into(),
        host.into(),
        port.parse().expect("a port number"),
        db.split('?').next().unwrap().into(),
    )
}

/// Points `fedi` at the services of `make services-up` as its external PostgreSQL, Redis
/// and S3 (their credentials in Secrets of the namespace), so that its dependencies are
/// really ready: the local control plane runs no real pods for managed ones.
pub async fn use_test_services(ns: &TestNamespace, fedi: &mut FediInstance) {
    let (_, password, ..) = postgres_parts(&service_env("FEDI_TEST_DATABASE_URL"));
    let secrets = ns.api::<k8s_openapi::api::core::v1::Secret>();
    for (name, data) in [
        ("test-db", json!({"password": password})),
        (
            "test-redis",
            json!({"url": service_env("FEDI_TEST_REDIS_URL")}),
        ),
        (
            "test-s3",
            json!({"accessKeyId": service_env("FEDI_TEST_S3_ACCESS_KEY"),
                   "secretAccessKey": service_env("FEDI_TEST_S3_SECRET_KEY")}),
        ),
    ] {
        let secret = serde_json::from_value(json!({
            "metadata": {"name": name}, "stringData": data}))
        .unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap_or_else(|e| panic!("create Secret {name}: {e}"));
    }
    use_test_services_without_secrets(ns, fedi);
}

/// `use_test_services` for a second instance in the namespace, whose Secrets exist.
pub fn use_test_services_without_secrets(ns: &TestNamespace, fedi: &mut FediInstance) {
    let (user, _, host, port, database) = postgres_parts(&service_env("FEDI_TEST_DATABASE_URL"));
    let services = json!({
        "database": {"external": {"host": host, "port": port, "database": database,
            "user": user, "sslmode": "disable",
            "passwordSecretRef": {"name": "test-db", "key": "password"}}},
        "redis": {"external": {"urlSecretRef": {"name": "test-redis", "key": "url"}}},
        "objectStorage": {"external": {"endpoint": service_env("FEDI_TEST_S3_ENDPOINT"),
            "region": service_env("FEDI_TEST_S3_REGION"), "bucket": ns.name, "pathStyle": true,
            "credentialsSecretRef": {"name": "test-s3"}}},
    });
    let mut spec = serde_json::to_value(&fedi.spec).unwrap();
    for (k, v) in services.as_object().unwrap() {
        spec[k] = v.clone();
    }
    fedi.spec = serde_json::from_value(spec).unwrap();
}

/// Polls `check` until it yields a value, or fails after `timeout` naming `what`.
pub async fn await_until<T, F, Fut>(
    timeout: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `fedi` satisfies `predicate`; on timeout the error carries the object as last
/// seen, which is what one needs to debug a failed e2e run.
pub async fn await_instance(
    api: &Api<FediInstance>,
    name: &str,
    timeout: Duration,
    what: &str,
    predicate: impl Fn(&FediInstance) -> bool,
) -> anyhow::Result<FediInstance> {
    let last = std::cell::RefCell::new(None);
    let found = await_until(timeout, what, || {
        let fut = api.get(name);
        let (last, predicate) = (&last, &predicate);
        async move {
            let f = fut.await.ok()?;
            let ok = predicate(&f);
            *last.borrow_mut() = Some(f.clone());
            ok.then_some(f)
        }
    })
    .await;
    found.with_context(|| {
        format!(
            "last seen: {}",
            serde_yaml::to_string(&*last.borrow()).unwrap_or_default()
        )
    })
}

/// The operator under test: one per test binary, on its own thread and runtime, watching all
/// namespaces, with a client that records every request it makes.
pub struct Operator {
    requests: std::sync::Arc<std::sync::Mutex<Vec<(http::Method, String)>>>,
    pub metrics: std::sync::Arc<fedi_operator::metrics::Metrics>,
}

impl Operator {
    pub fn shared() -> &'static Operator {
        Self::shared_with(None)
    }

    /// The operator of this test binary with `--max-concurrent-upgrades`; the first call
    /// in a binary decides.
    pub fn shared_with(max_concurrent_upgrades: Option<usize>) -> &'static Operator {
        static OPERATOR: std::sync::OnceLock<Operator> = std::sync::OnceLock::new();
        OPERATOR.get_or_init(|| {
            let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let metrics = std::sync::Arc::new(fedi_operator::metrics::Metrics::default());
            let (recorded, m) = (requests.clone(), metrics.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    fedi_operator::install_tls_provider();
                    let config = kube::Config::infer().await.expect("KUBECONFIG");
                    let record = tower::util::MapRequestLayer::new(
                        move |req: http::Request<kube::client::Body>| {
                            recorded
                                .lock()
                                .unwrap()
                                .push((req.method().clone(), req.uri().path().to_string()));
                            req
                        },
                    );
                    let client = kube::client::ClientBuilder::try_from(config)
                        .expect("client config")
                        .with_layer(&record)
                        .build();
                    fedi_operator::controller::run(
                        client,
                        m,
                        std::sync::Arc::new(fedi_operator::health::Health::default()),
                        fedi_operator::controller::Settings {
                            scope: fedi_operator::controller::Scope::All,
                            // Tests install the Gateway API CRDs and expect it noticed quickly.
                            rediscover_every: Duration::from_secs(2),
                            watch_secrets: true,
                            max_concurrent_upgrades,
                            ..Default::default()
                        },
                        std::future::pending::<()>(),
                    )
                    .await
                    .expect("operator runs");
                });
            });
            Operator { requests, metrics }
        })
    }

    /// Requests that change something (anything but GET, including watches and lists), made
    /// so far for objects in `namespace`. Events are not counted: they report, not change.
    pub fn writes_in(&self, namespace: &str) -> Vec<String> {
        let marker = format!("/namespaces/{namespace}/");
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, p)| {
                *m != http::Method::GET && p.contains(&marker) && !p.contains("/events")
            })
            .map(|(m, p)| format!("{m} {p}"))
            .collect()
    }

    /// `writes_in` once no new write has come for 3 s (the tail of a rollout: status updates
    /// as pods become ready), or after 60 s.
    pub async fn settled_writes_in(&self, namespace: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = self.writes_in(namespace);
        loop {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let now = self.writes_in(namespace);
            if now.len() == last.len() || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }
}

/// A JSON merge patch, as `kubectl patch --type merge` makes; panics on refusal.
pub async fn merge_patch<K>(api: &Api<K>, name: &str, patch: serde_json::Value) -> K
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("merge patch of {name} refused: {e}"))
}
