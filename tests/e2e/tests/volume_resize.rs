//! Growing a managed service's volume: the claims are grown, the StatefulSet recreated with
//! the new template while its pods keep running; a shrink, and a StorageClass that cannot
//! expand, are refused with a clear condition and leave the StatefulSet alone. The test
//! plays the storage provisioner: a StorageClass and a PersistentVolume bound in advance
//! to the claim the StatefulSet controller creates (only bound claims can grow).

use std::time::Duration;

use fedi_e2e::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);
const SET: &str = "minimal-redis";
const CLAIM: &str = "data-minimal-redis-0";
/// The managed Redis's claims (a primary and a replica).
const CLAIMS: [&str; 2] = [CLAIM, "data-minimal-redis-1"];

/// A StorageClass and a volume for each claim of `ns`, deleted when dropped.
struct Storage {
    class: String,
    volumes: Vec<String>,
}

impl Storage {
    async fn new(client: &Client, ns: &TestNamespace, expandable: bool) -> Self {
        let class = format!("{}-sc", ns.name);
        let sc: StorageClass = serde_json::from_value(json!({
            "metadata": {"name": class},
            "provisioner": "e2e.fedi.dev/none",
            "allowVolumeExpansion": expandable,
            "volumeBindingMode": "Immediate",
        }))
        .unwrap();
        Api::<StorageClass>::all(client.clone())
            .create(&PostParams::default(), &sc)
            .await
            .unwrap();
        let mut volumes = Vec::new();
        for claim in CLAIMS {
            let volume = format!("{}-{claim}", ns.name);
            let pv: PersistentVolume = serde_json::from_value(json!({
                "metadata": {"name": volume},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": class,
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": "/tmp/fedi-e2e-volume"},
                    "claimRef": {"namespace": ns.name, "name": claim},
                },
            }))
            .unwrap();
            Api::<PersistentVolume>::all(client.clone())
                .create(&PostParams::default(), &pv)
                .await
                .unwrap();
            volumes.push(volume);
        }
        Self { class, volumes }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let (class, volumes) = (self.class.clone(), self.volumes.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(client) = Client::try_default().await {
                    let dp = DeleteParams::default();
                    for volume in &volumes {
                        let _ = Api::<PersistentVolume>::all(client.clone())
                            .delete(volume, &dp)
                            .await;
                    }
                    let _ = Api::<StorageClass>::all(client).delete(&class, &dp).await;
                }
            });
        })
        .join()
        .ok();
    }
}

/// An instance with a managed Redis on `storage`'s class, its claim bound.
async fn bound(
    client: &Client,
    prefix: &str,
    expandable: bool,
) -> (TestNamespace, Api<FediInstance>, Storage) {
    install_crd(client).await;
    Operator::shared();
    let ns = TestNamespace::new(client, prefix).await;
    let storage = Storage::new(client, &ns, expandable).await;
    let mut fedi = sample("minimal");
    use_test_services(&ns, &mut fedi).await;
    fedi.spec.redis = serde_json::from_value(json!({"managed": {
        "storage": {"size": "1Gi", "storageClassName": storage.class}}}))
    .unwrap();
    let api = ns.api::<FediInstance>();
    api.create(&PostParams::default(), &fedi).await.unwrap();
    let claims = ns.api::<PersistentVolumeClaim>();
    await_until(TIMEOUT, "the claims to be bound", || async {
        for claim in CLAIMS {
            let c = claims.get_opt(claim).await.ok()??;
            if c.status?.phase.as_deref() != Some("Bound") {
                return None;
            }
        }
        Some(())
    })
    .await
    .unwrap();
    (ns, api, storage)
}

fn template_size(s: &StatefulSet) -> String {
    s.spec.volume_claim_templates.as_ref().unwrap()[0]
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap()["storage"]
        .0
        .clone()
}

fn claim_size(c: &PersistentVolumeClaim) -> String {
    c.spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap()["storage"]
        .0
        .clone()
}

async fn resize(api: &Api<FediInstance>, size: &str) {
    merge_patch(
        api,
        "minimal",
        json!({"spec": {"redis": {"managed": {"storage": {"size": size}}}}}),
    )
    .await;
}

#[tokio::test]
async fn growing_a_volume_grows_the_claim_and_recreates_the_statefulset_keeping_its_pods() {
    let client = client().await;
    let (ns, api, _storage) = bound(&client, "grow", true).await;
    let sets = ns.api::<StatefulSet>();
    let before = sets.get(SET).await.unwrap();
    assert_eq!(template_size(&before), "1Gi");
    let pods = ns.api::<Pod>();
    let pod = await_until(TIMEOUT, "the Redis pod", || async {
        pods.get_opt(&format!("{SET}-0")).await.ok()?
    })
    .await
    .unwrap();

    resize(&api, "2Gi").await;
    let after = await_until(TIMEOUT, "the StatefulSet recreated at 2Gi", || async {
        let s = sets.get_opt(SET).await.ok()??;
        (s.uid() != before.uid() && template_size(&s) == "2Gi").then_some(s)
    })
    .await;
    let after = match after {
        Ok(s) => s,
        Err(e) => {
            let f = api.get("minimal").await.unwrap();
            panic!(
                "{e}; the instance's conditions: {:?}",
                f.status.map(|s| s.conditions)
            );
        }
    };
    for name in CLAIMS {
        let claim = ns.api::<PersistentVolumeClaim>().get(name).await.unwrap();
        assert_eq!(claim_size(&claim), "2Gi", "{name}");
    }
    // The pod was orphaned and adopted, not recreated.
    let adopted = await_until(TIMEOUT, "the pod adopted", || async {
        let p = pods.get_opt(&format!("{SET}-0")).await.ok()??;
        let owner = p.owner_references().first()?.uid.clone();
        (Some(owner) == after.uid()).then_some(p)
    })
    .await
    .unwrap();
    assert_eq!(adopted.uid(), pod.uid(), "the pod was restarted");
    let notes: Vec<String> = ns
        .api::<Event>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("VolumesExpanded"))
        .filter_map(|e| e.note)
        .collect();
    assert!(notes.iter().any(|n| n.contains(CLAIM)), "{notes:?}");

    // Shrinking is refused; the StatefulSet stays as it is.
    resize(&api, "1Gi").await;
    let f = await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "VolumeShrinkRefused",
        degraded("VolumeShrinkRefused"),
    )
    .await
    .unwrap();
    let message = &f.condition("Degraded").unwrap().message;
    assert!(message.contains("cannot shrink"), "{message}");
    let kept = sets.get(SET).await.unwrap();
    assert_eq!(
        (kept.uid(), template_size(&kept)),
        (after.uid(), "2Gi".into())
    );
}

#[tokio::test]
async fn a_storage_class_without_expansion_is_reported_and_nothing_is_recreated() {
    let client = client().await;
    let (ns, api, _storage) = bound(&client, "fixed", false).await;
    let sets = ns.api::<StatefulSet>();
    let before = sets.get(SET).await.unwrap();
    resize(&api, "2Gi").await;
    let f = await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "VolumeExpansionRefused",
        degraded("VolumeExpansionRefused"),
    )
    .await
    .unwrap();
    let message = &f.condition("Degraded").unwrap().message;
    assert!(
        message.contains("data-minimal-redis-") && message.contains("allowVolumeExpansion"),
        "{message}"
    );
    let kept = sets.get(SET).await.unwrap();
    assert_eq!(
        (kept.uid(), template_size(&kept)),
        (before.uid(), "1Gi".into())
    );
    let claim = ns.api::<PersistentVolumeClaim>().get(CLAIM).await.unwrap();
    assert_eq!(claim_size(&claim), "1Gi");
}
