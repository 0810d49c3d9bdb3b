//! Every sample of `config/samples/` reaches Ready, applied as users apply them, with the
//! Secrets their comments ask users to create.
//!
//! On the local control plane the parts of a real cluster it lacks are played (see
//! `fedi_e2e::played`): the managed Redis and SeaweedFS pods the operator talks to run as
//! real programs on loopback addresses, named for the operator by a hosts file in its own
//! mount namespace; volumes are provisioned; CloudNativePG's status is set. The external
//! services the samples name are played too: AWS S3 (`s3.eu-central-1.amazonaws.com`, HTTPS
//! with a certificate of the test's own CA, which only the operator process trusts) by
//! SeaweedFS, the external PostgreSQL by the test services' one behind a TCP forwarder,
//! the external OpenSearch (HTTPS) by the test services' one behind a TLS terminator, the
//! external Redis Cluster by the test services' cluster. The test CA reaches the operator
//! as a private CA reaches users' operators: through the system store (`SSL_CERT_FILE`).
//!
//! On a real cluster (E2E_KUBECONFIG) nothing is played: the samples whose services live in
//! the cluster are awaited on its real pods, provided the operator (a process on this host)
//! can resolve the cluster's DNS names; the samples naming made-up external hosts are not.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::Duration;

use fedi_e2e::played::forward::Forwarder;
use fedi_e2e::played::programs::{self, PlayedCa, Tls, random_secret};
use fedi_e2e::played::{PlayedCluster, dns};
use fedi_e2e::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};
use serde::Deserialize;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(150);
/// The endpoint production.yaml and external-services.yaml keep their media at.
const AWS_S3: &str = "s3.eu-central-1.amazonaws.com";
/// Samples whose services are made-up hosts outside the cluster: on a real cluster there is
/// nothing to reach them with.
const EXTERNAL_SAMPLES: [&str; 3] = [
    "production",
    "external-services",
    "external-standalone-redis",
];
/// The external OpenSearch of external-services.yaml (`https://search.example.net:9200`).
const SEARCH_HOST: &str = "search.example.net";

/// Every FediInstance of `config/samples/`, with the file it comes from.
fn all_samples() -> Vec<(String, FediInstance)> {
    let dir = repo_root().join("config/samples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let yaml = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml::Deserializer::from_str(&yaml) {
            out.push((stem.clone(), FediInstance::deserialize(document).unwrap()));
        }
    }
    out
}

/// The Secrets the comments of sample `file` ask users to create. `s3_keys` holds the
/// played S3's credentials for the external buckets; the rest are values the operator never
/// checks (backups, SMTP) or the test services' own (PostgreSQL's password, Redis URLs).
fn user_secrets(file: &str, s3_keys: &BTreeMap<&str, (String, String)>) -> Vec<Secret> {
    let url = service_env("FEDI_TEST_DATABASE_URL");
    let db_password = url
        .strip_prefix("postgres://")
        .and_then(|r| r.split_once('@'))
        .and_then(|(auth, _)| auth.split_once(':'))
        .map(|(_, password)| password.to_string())
        .expect("a password in FEDI_TEST_DATABASE_URL");
    let s3 = |name: &str| {
        let (id, secret) = &s3_keys[name];
        json!({"accessKeyId": id, "secretAccessKey": secret})
    };
    let backup = || json!({"accessKeyId": "AKIAE2EBACKUP", "secretAccessKey": random_secret()});
    let secrets = match file {
        "production" => vec![
            ("prod-s3", s3("prod-s3")),
            ("prod-backup-s3", backup()),
            ("prod-smtp", json!({"password": random_secret()})),
        ],
        "external-services" => vec![
            ("social-db", json!({"password": db_password})),
            (
                "social-redis",
                json!({"url": service_env("FEDI_TEST_REDIS_CLUSTER_NODES")}),
            ),
            ("social-s3", s3("social-s3")),
            (
                "social-search",
                json!({"username": "admin", "password": random_secret()}),
            ),
        ],
        "external-standalone-redis" => vec![
            ("social-db", json!({"password": db_password})),
            (
                "social-redis",
                json!({"url": service_env("FEDI_TEST_REDIS_URL")}),
            ),
            ("social-s3", s3("social-s3")),
        ],
        "managed-ha" => vec![("backup-s3", backup())],
        _ => Vec::new(),
    };
    secrets
        .into_iter()
        .map(|(name, data)| {
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap()
        })
        .collect()
}

/// The external services production.yaml and external-services.yaml name, played on this
/// host: kept running while this lives.
struct PlayedExternals {
    _forwarders: Vec<Forwarder>,
    /// The played AWS S3's plain-HTTP API, to check the buckets the operator made.
    s3_http: String,
    ca: PlayedCa,
}

fn play_externals(
    played: &PlayedCluster,
    s3_keys: &BTreeMap<&str, (String, String)>,
) -> PlayedExternals {
    let ca = PlayedCa::new(&played.dir.join("ca")).unwrap();
    let wildcard = format!("*.{AWS_S3}");
    let (cert, key) = ca.issue("aws-s3", &[AWS_S3, &wildcard]).unwrap();
    let identities = json!({"identities": s3_keys.iter().map(|(name, (id, secret))| json!({
        "name": name, "credentials": [{"accessKey": id, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]})).collect::<Vec<_>>()});
    let ip = programs::loopback();
    let tls = Tls {
        cert,
        key,
        domain: AWS_S3.into(),
    };
    played.keep(
        programs::seaweedfs(
            &played.dir.join("aws-s3"),
            ip,
            8333,
            &identities.to_string(),
            Some(&tls),
        )
        .unwrap(),
    );
    played.hosts.map(AWS_S3, ip.into());
    // Virtual-hosted-style requests (no pathStyle in the samples) name the bucket first.
    for (_, fedi) in all_samples() {
        if let Some(s3) = &fedi.spec.object_storage.external
            && s3.endpoint.contains(AWS_S3)
        {
            played
                .hosts
                .map(&format!("{}.{AWS_S3}", s3.bucket), ip.into());
        }
    }

    // The external PostgreSQL and OpenSearch are the test services, on the samples' ports.
    let to = |var: &str| -> SocketAddr {
        let url = service_env(var);
        let host_port = url
            .split("://")
            .nth(1)
            .unwrap()
            .rsplit('@')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        host_port.parse().unwrap()
    };
    // Running before the instances exist, as a user's services are: the operator retries
    // an unreachable external service only on its next resync.
    let answering = || programs::answers(ip, 443) && programs::http_answers(ip, 8333);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !answering() {
        assert!(
            std::time::Instant::now() < deadline,
            "the played AWS S3 does not answer: see {}/aws-s3/log",
            played.dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The external PostgreSQL is the test services' one, on the sample's port.
    let mut forwarders = Vec::new();
    for (host, var) in [
        ("pg-primary.db.example.net", "FEDI_TEST_DATABASE_URL"),
        (
            "pg-replica.db.example.net",
            "FEDI_TEST_DATABASE_REPLICA_URL",
        ),
    ] {
        let ip = programs::loopback();
        forwarders.push(Forwarder::start(SocketAddr::from((ip, 5432)), to(var)).unwrap());
        played.hosts.map(host, ip.into());
    }
    // The external OpenSearch: the test services' one behind HTTPS, as the sample's URL says.
    let (cert, key) = ca.issue("search", &[SEARCH_HOST]).unwrap();
    let search_ip = programs::loopback();
    played.keep(
        programs::tls_terminator(
            &played.dir.join("search"),
            search_ip,
            9200,
            &cert,
            &key,
            to("FEDI_TEST_SEARCH_URL"),
        )
        .unwrap(),
    );
    played.hosts.map(SEARCH_HOST, search_ip.into());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !programs::answers(search_ip, 9200) {
        assert!(
            std::time::Instant::now() < deadline,
            "the played OpenSearch endpoint does not answer: see {}/search/log",
            played.dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    PlayedExternals {
        _forwarders: forwarders,
        s3_http: format!("http://{ip}:8333"),
        ca,
    }
}

/// The operator as a process serving `ns`, its JSON debug log in `log`.
fn start_operator(
    ns: &str,
    log: &std::path::Path,
    played: Option<(&PlayedCluster, &PlayedExternals)>,
) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = match played {
        Some((cluster, externals)) => {
            let mut cmd = dns::operator_command(cluster.hosts.path());
            // Trusts the played HTTPS endpoints, and nothing else: every other one is played.
            cmd.env("SSL_CERT_FILE", &externals.ca.cert);
            cmd
        }
        None => std::process::Command::new(operator_bin()),
    };
    cmd.args(["--http-addr", &format!("127.0.0.1:{port}")])
        .args(["--namespaces", ns])
        .env("POD_NAMESPACE", ns)
        .env("POD_NAME", "samples")
        .env("FEDI_OPERATOR_LEADER_ELECTION", "false")
        .env("RUST_LOG", "debug")
        .arg("--log-json")
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the operator (build it with `cargo build --bin fedi-operator`)")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn every_sample_reaches_ready_as_users_apply_it() {
    let client = client().await;
    install_crd(&client).await;
    if !fedi_e2e::played::is_local_control_plane(&client).await {
        return on_a_real_cluster(&client).await;
    }
    dns::assert_mount_namespaces();
    // Before the operator starts, so that it discovers CloudNativePG at once.
    let _cnpg = ThirdPartyCrds::install(&client, "cloudnative-pg").await;
    // Each file in a namespace of its own, as `kubectl apply -n <ns> -f <sample>` (two
    // samples name the same Secrets with different contents).
    let samples = all_samples();
    let mut namespaces: BTreeMap<String, TestNamespace> = BTreeMap::new();
    for (file, _) in &samples {
        if !namespaces.contains_key(file) {
            namespaces.insert(file.clone(), TestNamespace::new(&client, file).await);
        }
    }
    let names: Vec<String> = namespaces.values().map(|n| n.name.clone()).collect();
    let dir = std::env::temp_dir().join(format!("fedi-e2e-samples-{}", std::process::id()));
    let played = PlayedCluster::start(&client, &names, &dir);
    // Removed on success; on a failure the logs of what was played are worth reading.
    eprintln!("operator log and played programs: {}", dir.display());
    let s3_keys: BTreeMap<&str, (String, String)> = ["prod-s3", "social-s3"]
        .into_iter()
        .map(|n| {
            (
                n,
                (format!("AKIA{}", &random_secret()[..12]), random_secret()),
            )
        })
        .collect();
    let externals = play_externals(&played, &s3_keys);

    for (file, ns) in &namespaces {
        for secret in user_secrets(file, &s3_keys) {
            ns.api::<Secret>()
                .create(&PostParams::default(), &secret)
                .await
                .unwrap();
        }
    }
    let log = dir.join("operator.log");
    let _operator = Killed(start_operator(
        &names.join(","),
        &log,
        Some((&played, &externals)),
    ));
    for (file, fedi) in &samples {
        namespaces[file]
            .api::<FediInstance>()
            .create(&PostParams::default(), fedi)
            .await
            .unwrap();
    }
    let started = std::time::Instant::now();
    for (file, fedi) in &samples {
        let api = namespaces[file].api::<FediInstance>();
        let name = fedi.name_any();
        let what = format!("{file}: {name} Ready");
        await_instance(&api, &name, TIMEOUT, &what, ready_at(1))
            .await
            .unwrap();
    }
    eprintln!(
        "{} instances of {} samples Ready after {:?}",
        samples.len(),
        namespaces.len(),
        started.elapsed()
    );

    let mut reasons = BTreeMap::new();
    for (file, fedi) in &samples {
        let f = namespaces[file]
            .api::<FediInstance>()
            .get(&fedi.name_any())
            .await
            .unwrap();
        for t in ["DatabaseReady", "RedisReady", "StorageReady", "SearchReady"] {
            let c = f.condition(t).unwrap();
            assert_eq!(c.status, "True", "{file}: {t} {c:?}");
            reasons.insert((f.name_any(), t), c.reason.clone());
        }
    }
    let reason = |name: &str, t: &'static str| reasons[&(name.to_string(), t)].as_str();
    // The played services are really used: the external ones through the played DNS...
    assert_eq!(reason("social", "DatabaseReady"), "Reachable");
    assert_eq!(reason("social", "RedisReady"), "ClusterOk");
    // Over HTTPS with a certificate of a private CA, trusted through the system store.
    assert_eq!(reason("social", "SearchReady"), "Reachable");
    assert_eq!(reason("cafe", "RedisReady"), "Ready");
    for name in ["prod", "social", "cafe"] {
        assert_eq!(reason(name, "StorageReady"), "BucketReady", "{name}");
    }
    // ...and the managed ones, which the operator formed and prepared.
    for (file, name) in [("production", "prod"), ("managed-ha", "big")] {
        redis_cluster_formed(&client, &namespaces[file], &played, name).await;
    }
    for (file, fedi) in &samples {
        if fedi.spec.object_storage.external.is_none() {
            managed_bucket_prepared(&namespaces[file], &played, &fedi.name_any()).await;
        }
    }
    for bucket in [
        "example-org-media",
        "social-example-media",
        "cafe-example-media",
    ] {
        let keys = if bucket.starts_with("example-org") {
            "prod-s3"
        } else {
            "social-s3"
        };
        let (id, secret) = &s3_keys[keys];
        bucket_has_cors(&externals.s3_http, bucket, id, secret).await;
    }

    let log_text = std::fs::read_to_string(&log).unwrap();
    for ns in namespaces.values() {
        let mut haystack = fedi_e2e::leaks::Haystack::of_namespace(&client, &ns.name).await;
        haystack.add("the operator's log", log_text.clone());
        let secrets = fedi_e2e::leaks::secret_values(&client, &ns.name).await;
        if !secrets.is_empty() {
            haystack.assert_none_of(&secrets);
        }
    }
    drop(played);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The managed Redis Cluster of `name`: 3 shards holding every slot, a replica each.
async fn redis_cluster_formed(
    client: &Client,
    ns: &TestNamespace,
    played: &PlayedCluster,
    name: &str,
) {
    let secret = Api::<Secret>::namespaced(client.clone(), &ns.name)
        .get(&format!("{name}-redis"))
        .await
        .unwrap();
    let password = String::from_utf8(secret.data.unwrap()["password"].0.clone()).unwrap();
    let ips = played.pod_ips(&ns.name, &format!("{name}-redis"));
    assert_eq!(ips.len(), 6, "{name}: 3 shards x (1 + 1 replica)");
    for ip in ips {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", &ip.to_string(), "-p", "6379", "cluster", "info"])
            // Not on the command line, where ps would show it.
            .env("REDISCLI_AUTH", &password)
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&out.stdout);
        for want in [
            "cluster_state:ok",
            "cluster_slots_assigned:16384",
            "cluster_known_nodes:6",
            "cluster_size:3",
        ] {
            assert!(info.contains(want), "{name} {ip}: {want} in {info}");
        }
    }
}

/// The managed store of `name` holds the media bucket, with its CORS rules.
async fn managed_bucket_prepared(ns: &TestNamespace, played: &PlayedCluster, name: &str) {
    let secret = ns.api::<Secret>().get(&format!("{name}-s3")).await.unwrap();
    let data = secret.data.unwrap();
    let value = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    let ip = played.pod_ips(&ns.name, &format!("{name}-s3"))[0];
    bucket_has_cors(
        &format!("http://{ip}:8333"),
        "media",
        &value("accessKeyId"),
        &value("secretAccessKey"),
    )
    .await;
}

async fn bucket_has_cors(endpoint: &str, bucket: &str, id: &str, secret: &str) {
    let target = fedi_operator::object_storage::Target {
        endpoint: endpoint.into(),
        region: "eu-central-1".into(),
        bucket: bucket.into(),
        path_style: true,
        access_key_id: id.into(),
        secret_access_key: secret.into(),
    };
    fedi_operator::object_storage::check(&target)
        .await
        .unwrap_or_else(|e| panic!("bucket {bucket} at {endpoint}: {e}"));
    let s3 = fedi_operator::object_storage::client(&target).unwrap();
    let cors = s3.get_bucket_cors().bucket(bucket).send().await.unwrap();
    assert!(
        !cors.cors_rules().is_empty(),
        "{bucket} at {endpoint}: CORS"
    );
}

/// On a real cluster nothing is played. The operator runs on this host, so it reaches the
/// managed services only where this host resolves the cluster's DNS names.
async fn on_a_real_cluster(client: &Client) {
    use std::net::ToSocketAddrs;
    if ("kubernetes.default.svc", 443).to_socket_addrs().is_err() {
        eprintln!(
            "skipped: this host does not resolve the cluster's DNS names, which the operator \
             (run here as a process) needs to reach the managed Redis and object store"
        );
        return;
    }
    if !ThirdPartyCrds::present(client, "cloudnative-pg").await {
        eprintln!("skipped: the samples need CloudNativePG, which this cluster lacks");
        return;
    }
    let ns = TestNamespace::new(client, "allsamples").await;
    let secrets = ns.api::<Secret>();
    let backup: Secret = serde_json::from_value(json!({"metadata": {"name": "backup-s3"},
        "stringData": {"accessKeyId": "AKIAE2EBACKUP", "secretAccessKey": random_secret()}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &backup)
        .await
        .unwrap();
    let log = std::env::temp_dir().join(format!("fedi-operator-{}.log", ns.name));
    let _operator = Killed(start_operator(&ns.name, &log, None));
    let api = ns.api::<FediInstance>();
    let samples: Vec<_> = all_samples()
        .into_iter()
        .filter(|(file, _)| !EXTERNAL_SAMPLES.contains(&file.as_str()))
        .collect();
    for (_, fedi) in &samples {
        api.create(&PostParams::default(), fedi).await.unwrap();
    }
    for (file, fedi) in &samples {
        let name = fedi.name_any();
        await_instance(
            &api,
            &name,
            Duration::from_secs(600),
            &format!("{file}: {name} Ready"),
            ready_at(1),
        )
        .await
        .unwrap();
    }
    let mut haystack = fedi_e2e::leaks::Haystack::of_namespace(client, &ns.name).await;
    haystack.add("the operator's log", std::fs::read_to_string(&log).unwrap());
    haystack.assert_none_of(&fedi_e2e::leaks::secret_values(client, &ns.name).await);
    let _ = std::fs::remove_file(&log);
}
