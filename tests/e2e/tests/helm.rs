//! The chart as users install it: `helm install`, then the operator running with exactly
//! the chart's ServiceAccount (its token, its RBAC) serves an instance until it is Ready.
//! The pod the chart creates is a kwok fake, so the operator binary runs here, under that
//! account: a missing rule in the chart fails this test.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fedi_e2e::*;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

/// `helm` with the test's KUBECONFIG; panics with its output when it fails.
fn helm(args: &[&str]) {
    let out = Command::new("helm")
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("helm is on PATH (the local control plane's env file puts it there)");
    assert!(
        out.status.success(),
        "helm {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An installed release, uninstalled when dropped.
struct Release {
    name: String,
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = Command::new("helm")
            .args([
                "uninstall",
                &self.name,
                "--namespace",
                &self.namespace,
                "--wait",
            ])
            .output();
    }
}

/// A kubeconfig for the release's ServiceAccount: the cluster of the current KUBECONFIG and
/// a token of that account (TokenRequest, one hour).
async fn service_account_kubeconfig(
    client: &kube::Client,
    namespace: &str,
    account: &str,
) -> tempfile_path::TempPath {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": {"audiences": [], "expirationSeconds": 3600}}))
    .unwrap();
    let token = accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .expect("a token for the chart's ServiceAccount")
        .status
        .expect("a token")
        .token;
    let current = kube::config::Kubeconfig::read().expect("the test's kubeconfig");
    let cluster = current.clusters[0].cluster.clone().expect("a cluster");
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
        }}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": account}}],
        "current-context": "c",
    });
    let path = tempfile_path::TempPath::new(&format!("kubeconfig-{namespace}-{account}"));
    std::fs::write(&path.0, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

/// A file removed when dropped (no tempfile crate needed for one file).
mod tempfile_path {
    pub struct TempPath(pub std::path::PathBuf);

    impl TempPath {
        pub fn new(name: &str) -> Self {
            Self(std::env::temp_dir().join(format!("{name}-{}", std::process::id())))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn installed_operator_serves_an_instance(mode: &str, extra: &[&str]) {
    let client = client().await;
    install_crd(&client).await;
    let home = TestNamespace::new(&client, &format!("helm-{mode}")).await;
    let tenant = TestNamespace::new(&client, &format!("tenant-{mode}")).await;
    let release = Release {
        name: format!("fedi-{mode}"),
        namespace: home.name.clone(),
    };
    let watch = format!("watchNamespaces={{{}}}", tenant.name);
    let mut args = vec![
        "install",
        &release.name,
        "charts/fedi-operator",
        "--namespace",
        &home.name,
        "--wait",
        "--timeout",
        "90s",
    ];
    args.extend_from_slice(extra);
    if mode == "namespaced" {
        args.extend_from_slice(&["--set", &watch]);
    }
    helm(&args);

    let kubeconfig = service_account_kubeconfig(&client, &home.name, &release.name).await;
    let _operator = Operator(
        Command::new(operator_bin())
            .args(["--http-addr", "127.0.0.1:0", "--namespaces", &tenant.name])
            .env("KUBECONFIG", &kubeconfig.0)
            .env("POD_NAMESPACE", &home.name)
            .env("POD_NAME", "helm-e2e")
            .env("FEDI_OPERATOR_LEASE", &release.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fedi-operator (built by scripts/e2e.sh)"),
    );

    let mut fedi = sample("minimal");
    use_test_services(&tenant, &mut fedi).await;
    let api = tenant.api::<FediInstance>();
    api.create(&PostParams::default(), &fedi).await.unwrap();
    let f = await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "Ready under the chart's RBAC",
        ready_at(1),
    )
    .await
    .unwrap();
    for t in ["DatabaseReady", "RedisReady", "StorageReady", "SearchReady"] {
        assert_eq!(f.condition(t).unwrap().status, "True", "{t}");
    }
}

#[tokio::test]
async fn with_a_cluster_role_the_installed_operator_serves_an_instance() {
    installed_operator_serves_an_instance("cluster", &[]).await;
}

#[tokio::test]
async fn with_namespaced_roles_and_no_secret_watch_the_installed_operator_serves_an_instance() {
    installed_operator_serves_an_instance("namespaced", &["--set", "watchSecrets=false"]).await;
}
