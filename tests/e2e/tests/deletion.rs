//! What deleting an instance leaves behind. `deletionPolicy: Retain` keeps the data objects
//! (CloudNativePG's Cluster, the managed services' volumes, the generated Secrets);
//! `Delete` removes them through the finalizer, and an operator killed mid-deletion finishes
//! the job when it comes back. The operator runs as a process here, so that it can be
//! killed; the test plays the StatefulSet controller's volumes through the control plane's
//! own controller-manager (kwok pods), and CloudNativePG only by its CRDs (nothing needs the
//! Cluster to be ready). One test, because it installs cluster-wide CRDs.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fedi_e2e::*;
use fedi_operator::finalizer::FINALIZER;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);
/// A finalizer of the test's, on one volume: it holds the deletion mid-way.
const HOLD: &str = "e2e.fedi.dev/hold";

/// The operator as a process serving `namespaces`, killed when dropped.
struct OperatorProcess(Child);

impl OperatorProcess {
    fn start(namespaces: &[&str], log: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::env::temp_dir().join(log))
            .unwrap();
        let child = Command::new(operator_bin())
            .args(["--http-addr", &format!("127.0.0.1:{port}")])
            .args(["--namespaces", &namespaces.join(",")])
            .env("POD_NAMESPACE", namespaces[0])
            .env("FEDI_OPERATOR_LEADER_ELECTION", "false")
            .env("FEDI_OPERATOR_DISCOVERY_INTERVAL", "2")
            .env("RUST_LOG", "info")
            .arg("--log-json")
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("the fedi-operator binary (cargo build --bin fedi-operator)");
        Self(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every service managed (the minimal sample's defaults), under `policy`.
fn managed(name: &str, policy: &str) -> FediInstance {
    let mut fedi = sample("minimal");
    fedi.metadata.name = Some(name.into());
    fedi.spec.deletion_policy = serde_json::from_value(json!(policy)).unwrap();
    fedi
}

/// The data objects of instance `name`, by kind/name, that exist and are not terminating.
struct Data {
    client: Client,
    namespace: String,
    name: String,
}

impl Data {
    fn clusters(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &fedi_operator::build::database::cluster_resource(),
        )
    }

    fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn secret_names(&self) -> [String; 3] {
        let n = &self.name;
        [format!("{n}-keys"), format!("{n}-redis"), format!("{n}-s3")]
    }

    /// Every object of the instance's data that exists, terminating or not.
    async fn present(&self) -> Vec<String> {
        let mut out = Vec::new();
        let selector = format!("app.kubernetes.io/instance={}", self.name);
        let list = ListParams::default().labels(&selector);
        for c in self.clusters().list(&list).await.unwrap() {
            out.push(format!("Cluster/{}", c.name_any()));
        }
        for c in self.claims().list(&list).await.unwrap() {
            out.push(format!("PersistentVolumeClaim/{}", c.name_any()));
        }
        let sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.namespace);
        for s in sets.list(&list).await.unwrap() {
            out.push(format!("StatefulSet/{}", s.name_any()));
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        for name in self.secret_names() {
            if secrets.get_opt(&name).await.unwrap().is_some() {
                out.push(format!("Secret/{name}"));
            }
        }
        out.sort();
        out
    }

    /// The Cluster, one volume per managed StatefulSet, the generated Secrets.
    async fn complete(&self) -> Option<Vec<String>> {
        let present = self.present().await;
        let n = &self.name;
        let wanted = [
            format!("Cluster/{n}-db"),
            format!("PersistentVolumeClaim/data-{n}-redis-0"),
            format!("PersistentVolumeClaim/data-{n}-s3-0"),
            format!("Secret/{n}-keys"),
            format!("Secret/{n}-redis"),
            format!("Secret/{n}-s3"),
        ];
        wanted
            .iter()
            .all(|w| present.contains(w))
            .then_some(present)
    }
}

/// Adds or removes the test's finalizer on volume `name`, keeping the others.
async fn hold(api: &Api<PersistentVolumeClaim>, name: &str, on: bool) {
    let claim = api.get(name).await.unwrap();
    let mut finalizers: Vec<String> = claim
        .finalizers()
        .iter()
        .filter(|f| *f != HOLD)
        .cloned()
        .collect();
    if on {
        finalizers.push(HOLD.into());
    }
    let patch = json!({"metadata": {"finalizers": finalizers,
        "resourceVersion": claim.resource_version()}});
    merge_patch(api, name, patch).await;
}

async fn gone(api: &Api<FediInstance>, name: &str) {
    await_until(TIMEOUT, "the instance to go", || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn retain_keeps_the_data_and_delete_removes_it_across_operator_restarts() {
    let client = client().await;
    install_crd(&client).await;
    let _cnpg = ThirdPartyCrds::install(&client, "cloudnative-pg").await;
    let keep_ns = TestNamespace::new(&client, "retain").await;
    let del_ns = TestNamespace::new(&client, "delete").await;
    let log = format!("fedi-e2e-deletion-{}.log", del_ns.name);
    let mut operator = OperatorProcess::start(&[&keep_ns.name, &del_ns.name], &log);
    let keep_api = keep_ns.api::<FediInstance>();
    let del_api = del_ns.api::<FediInstance>();
    keep_api
        .create(&PostParams::default(), &managed("kept", "Retain"))
        .await
        .unwrap();
    del_api
        .create(&PostParams::default(), &managed("doomed", "Delete"))
        .await
        .unwrap();
    let kept = Data {
        client: client.clone(),
        namespace: keep_ns.name.clone(),
        name: "kept".into(),
    };
    let doomed = Data {
        client: client.clone(),
        namespace: del_ns.name.clone(),
        name: "doomed".into(),
    };
    let before = await_until(TIMEOUT, "the retained instance's data", || kept.complete())
        .await
        .unwrap();
    await_until(TIMEOUT, "the deleted instance's data", || doomed.complete())
        .await
        .unwrap();
    let f = await_instance(&del_api, "doomed", TIMEOUT, "the finalizer", |f| {
        f.finalizers().contains(&FINALIZER.to_string())
    })
    .await
    .unwrap();
    assert_eq!(f.finalizers(), [FINALIZER]);
    let k = keep_api.get("kept").await.unwrap();
    assert!(k.finalizers().is_empty(), "{:?}", k.finalizers());

    // Retain: the instance goes at once; its workloads follow it, its data stays.
    keep_api
        .delete("kept", &DeleteParams::default())
        .await
        .unwrap();
    gone(&keep_api, "kept").await;
    let sets: Api<StatefulSet> = keep_ns.api();
    await_until(TIMEOUT, "the StatefulSets to be collected", || async {
        sets.list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await
    .unwrap();
    let after = kept.present().await;
    let data: Vec<&String> = before
        .iter()
        .filter(|o| !o.starts_with("StatefulSet/"))
        .collect();
    for object in &data {
        assert!(after.contains(object), "{object} was deleted: {after:?}");
    }
    for c in kept.claims().list(&Default::default()).await.unwrap() {
        assert!(c.metadata.deletion_timestamp.is_none(), "{}", c.name_any());
    }

    // Delete, held mid-way by a volume that cannot go yet.
    let held = "data-doomed-redis-0";
    hold(&doomed.claims(), held, true).await;
    del_api
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    await_until(TIMEOUT, "the teardown to reach the held volume", || async {
        let present = doomed.present().await;
        let claim = doomed.claims().get_opt(held).await.ok()??;
        (claim.metadata.deletion_timestamp.is_some()
            && !present.iter().any(|o| o.starts_with("Cluster/")))
        .then_some(())
    })
    .await
    .unwrap();
    operator.kill();
    let f = del_api.get("doomed").await.expect("held by the finalizer");
    assert!(f.metadata.deletion_timestamp.is_some());
    assert_eq!(f.finalizers(), [FINALIZER]);
    let mid = doomed.present().await;
    // The credentials outlive a volume that may still be read.
    assert!(mid.contains(&"Secret/doomed-redis".to_string()), "{mid:?}");
    hold(&doomed.claims(), held, false).await;

    let _operator = OperatorProcess::start(&[&keep_ns.name, &del_ns.name], &log);
    gone(&del_api, "doomed").await;
    let left = doomed.present().await;
    assert!(left.is_empty(), "left behind: {left:?}");
    let events: Vec<String> = del_ns
        .api::<Event>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("DataDeleted"))
        .filter_map(|e| e.note)
        .collect();
    let all = events.join("; ");
    for object in ["Cluster/doomed-db", "Secret/doomed-keys"] {
        assert!(all.contains(object), "{object} not reported: {all}");
    }
}
