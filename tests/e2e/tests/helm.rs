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
        // The shared CRD of every e2e test is applied by install_crd, not owned by a release.
        "--set",
        "crds.install=false",
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

/// A copy of the chart whose CRD is a private one (its own API group), so that this test can
/// install an older schema and upgrade it without touching the CRD the other tests share.
/// `edit` changes the CRD before it is written (to make the "older" release).
fn chart_with_private_crd(
    dir: &std::path::Path,
    group: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> String {
    let src = repo_root().join("charts/fedi-operator");
    let status = Command::new("cp")
        .args(["-r", src.to_str().unwrap(), dir.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success(), "copy the chart");
    let file = dir.join("files/crds/fediinstances.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(
            "name: fediinstances.fedi.dev",
            &format!("name: fediinstances.{group}"),
        )
        .replace("group: fedi.dev", &format!("group: {group}"));
    let mut crd: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    edit(&mut crd);
    std::fs::write(&file, serde_yaml::to_string(&crd).unwrap()).unwrap();
    dir.to_str().unwrap().to_string()
}

/// The spec properties of the (single) version of a CRD.
fn spec_properties(crd: &mut serde_json::Value) -> &mut serde_json::Map<String, serde_json::Value> {
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        .as_object_mut()
        .expect("spec properties in the CRD")
}

#[tokio::test]
async fn a_chart_upgrade_updates_the_crd_and_an_uninstall_keeps_it() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject};

    let client = client().await;
    let home = TestNamespace::new(&client, "helm-crd").await;
    let group = format!("{}.upgrade.test", home.name);
    let crd_name = format!("fediinstances.{group}");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // The CRD outlives the release by design: this test removes its private one itself
    // (kubectl, as a drop cannot await the async client).
    struct DeleteCrd(String);
    impl Drop for DeleteCrd {
        fn drop(&mut self) {
            let _ = Command::new("kubectl")
                .args(["delete", "crd", &self.0, "--wait=false"])
                .output();
        }
    }
    let _cleanup = DeleteCrd(crd_name.clone());

    let work = std::env::temp_dir().join(format!("helm-crd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    // The older release: its CRD does not know spec.suspend yet.
    let old_chart = chart_with_private_crd(&work.join("old"), &group, |crd| {
        assert!(
            spec_properties(crd).remove("suspend").is_some(),
            "spec.suspend exists"
        );
    });
    let new_chart = chart_with_private_crd(&work.join("new"), &group, |_| {});
    let release = Release {
        name: "fedi-crd".into(),
        namespace: home.name.clone(),
    };
    let common = ["--namespace", &home.name, "--wait", "--timeout", "90s"];
    let has_suspend = |crd: &CustomResourceDefinition| {
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| s.properties.as_ref())
            .and_then(|p| p.get("spec"))
            .and_then(|s| s.properties.as_ref())
            .is_some_and(|p| p.contains_key("suspend"))
    };

    let mut args = vec!["install", &release.name, &old_chart];
    args.extend_from_slice(&common);
    helm(&args);
    let crd = crds
        .get(&crd_name)
        .await
        .expect("the release installed its CRD");
    assert!(!has_suspend(&crd), "the older CRD has no spec.suspend");

    // An instance of the older schema, to outlive the uninstall below.
    let resource = ApiResource {
        group: group.clone(),
        version: "v1alpha1".into(),
        api_version: format!("{group}/v1alpha1"),
        kind: "FediInstance".into(),
        plural: "fediinstances".into(),
    };
    let instances: Api<DynamicObject> = Api::namespaced_with(client.clone(), &home.name, &resource);
    let instance: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1alpha1"),
        "kind": "FediInstance",
        "metadata": {"name": "survivor"},
        "spec": {"domain": "survivor.example.com"},
    }))
    .unwrap();
    await_until(TIMEOUT, "the older CRD to serve its API", || async {
        instances
            .create(&PostParams::default(), &instance)
            .await
            .ok()
            .map(|_| ())
    })
    .await
    .unwrap();

    let mut args = vec!["upgrade", &release.name, &new_chart];
    args.extend_from_slice(&common);
    helm(&args);
    let crd = crds.get(&crd_name).await.unwrap();
    assert!(
        has_suspend(&crd),
        "helm upgrade brought the new CRD's spec.suspend"
    );
    assert_eq!(
        crd.metadata.annotations.unwrap_or_default()["helm.sh/resource-policy"],
        "keep"
    );

    helm(&[
        "uninstall",
        &release.name,
        "--namespace",
        &home.name,
        "--wait",
    ]);
    let crd = crds
        .get(&crd_name)
        .await
        .expect("helm uninstall kept the CRD (helm.sh/resource-policy: keep)");
    assert!(
        crd.metadata.deletion_timestamp.is_none(),
        "the CRD is not being deleted"
    );
    instances
        .get("survivor")
        .await
        .expect("the instance survives helm uninstall");
    let _ = std::fs::remove_dir_all(&work);
}
