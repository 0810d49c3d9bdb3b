//! The operator against a real API server: children, status, drift repair, no-op writes.

use std::time::{Duration, Instant};

use fedi_e2e::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);
/// Well below the one-minute retry of an instance waiting for a person: meeting it shows
/// that the Secret's watch, not the retry, brought the change.
const SECRET_WATCH: Duration = Duration::from_secs(30);

async fn ready_instance(client: &kube::Client, prefix: &str) -> (TestNamespace, Api<FediInstance>) {
    let (ns, api) = create_instance(client, prefix, |_| {}).await;
    await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "the minimal sample to be Ready",
        ready_at(1),
    )
    .await
    .unwrap();
    (ns, api)
}

#[tokio::test]
async fn an_instance_on_its_services_becomes_ready_with_every_child_owned() {
    let client = client().await;
    let started = Instant::now();
    let (ns, api) = ready_instance(&client, "minimal").await;
    eprintln!("minimal sample Ready in {:?}", started.elapsed());
    let fedi = api.get("minimal").await.unwrap();
    let uid = fedi.uid().unwrap();
    let owned_by_instance =
        |owners: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]| {
            owners
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true))
        };
    let status = fedi.status.unwrap();
    let names: Vec<_> = status
        .components
        .iter()
        .map(|c| (c.name.as_str(), c.ready, c.desired))
        .collect();
    assert_eq!(
        names,
        [("api", 1, 1), ("streamer", 1, 1), ("worker-default", 1, 1)]
    );
    assert!(status.version.is_some());

    for name in ["minimal-api", "minimal-streamer", "minimal-worker-default"] {
        let d = ns.api::<Deployment>().get(name).await.unwrap();
        assert!(owned_by_instance(d.owner_references()), "{name}");
    }
    for name in ["minimal-api", "minimal-streamer"] {
        assert!(owned_by_instance(
            ns.api::<Service>()
                .get(name)
                .await
                .unwrap()
                .owner_references()
        ));
    }
    // Every change is visible in `kubectl describe`: one event per child created.
    let events: Api<k8s_openapi::api::events::v1::Event> = ns.api();
    let notes: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Created"))
        .filter_map(|e| e.note)
        .collect();
    for child in [
        "Deployment/minimal-api",
        "Service/minimal-streamer",
        "NetworkPolicy/minimal",
    ] {
        assert!(
            notes.contains(&format!("Created {child}")),
            "{child} in {notes:?}"
        );
    }
    for name in ["minimal-api", "minimal-streamer"] {
        let pdb = ns.api::<PodDisruptionBudget>().get(name).await.unwrap();
        assert!(owned_by_instance(pdb.owner_references()), "{name}");
    }
    let np = ns.api::<NetworkPolicy>().get("minimal").await.unwrap();
    assert!(owned_by_instance(np.owner_references()));
    assert!(owned_by_instance(
        ns.api::<ConfigMap>()
            .get("minimal-config")
            .await
            .unwrap()
            .owner_references()
    ));
    assert!(owned_by_instance(
        ns.api::<ServiceAccount>()
            .get("minimal")
            .await
            .unwrap()
            .owner_references()
    ));
}

#[tokio::test]
async fn a_replicas_change_reaches_the_deployment_and_is_reported() {
    let client = client().await;
    let (ns, api) = ready_instance(&client, "replicas").await;
    merge_patch(&api, "minimal", json!({"spec": {"api": {"replicas": 3}}})).await;
    let deployments = ns.api::<Deployment>();
    await_until(
        TIMEOUT,
        "the api Deployment to ask for 3 replicas",
        || async {
            (deployments.get("minimal-api").await.ok()?.spec.replicas == Some(3)).then_some(())
        },
    )
    .await
    .unwrap();
    let f = await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "Ready at generation 2",
        ready_at(2),
    )
    .await
    .unwrap();
    let api_status = f
        .status
        .unwrap()
        .components
        .into_iter()
        .find(|c| c.name == "api")
        .unwrap();
    assert_eq!((api_status.ready, api_status.desired), (3, 3));
}

#[tokio::test]
async fn drift_is_repaired_deleted_deployment_and_tampered_service() {
    let client = client().await;
    let (ns, _api) = ready_instance(&client, "drift").await;
    let deployments = ns.api::<Deployment>();
    let old_uid = deployments.get("minimal-streamer").await.unwrap().uid();
    deployments
        .delete("minimal-streamer", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = Instant::now();
    await_until(
        Duration::from_secs(5),
        "the deleted Deployment to be restored",
        || async {
            let d = deployments.get("minimal-streamer").await.ok()?;
            (d.uid() != old_uid).then_some(())
        },
    )
    .await
    .unwrap();
    eprintln!("deleted Deployment restored in {:?}", deleted.elapsed());

    let services = ns.api::<Service>();
    merge_patch(
        &services,
        "minimal-api",
        json!({"spec": {"selector": {"app.kubernetes.io/component": "hijacked"}}}),
    )
    .await;
    await_until(
        Duration::from_secs(5),
        "the tampered Service selector to be restored",
        || async {
            let s = services.get("minimal-api").await.ok()?;
            let selector = s.spec?.selector?;
            (selector
                .get("app.kubernetes.io/component")
                .map(String::as_str)
                == Some("api"))
            .then_some(())
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_reconcile_of_an_unchanged_instance_writes_nothing() {
    let client = client().await;
    let (ns, api) = ready_instance(&client, "noop").await;
    let operator = Operator::shared();
    let before = operator.settled_writes_in(&ns.name).await;
    let status_before = api.get("minimal").await.unwrap().status;
    let reconciles = operator.metrics.reconciles();
    // A label change triggers a reconcile without changing anything the operator manages.
    merge_patch(
        &api,
        "minimal",
        json!({"metadata": {"labels": {"touched": "yes"}}}),
    )
    .await;
    await_until(TIMEOUT, "a reconcile after the label change", || async {
        (operator.metrics.reconciles() > reconciles).then_some(())
    })
    .await
    .unwrap();
    let after = operator.settled_writes_in(&ns.name).await;
    let status_after = api.get("minimal").await.unwrap().status;
    assert_eq!(
        status_before, status_after,
        "nothing changed, so neither may the status"
    );
    assert_eq!(
        after[before.len()..],
        [] as [String; 0],
        "a no-op reconcile must not write"
    );
}

#[tokio::test]
async fn deleting_the_instance_removes_its_children() {
    let client = client().await;
    let (ns, api) = ready_instance(&client, "delete").await;
    api.delete("minimal", &DeleteParams::foreground())
        .await
        .unwrap();
    let (deployments, services) = (ns.api::<Deployment>(), ns.api::<Service>());
    await_until(TIMEOUT, "the children to be garbage-collected", || async {
        let left = deployments
            .list(&Default::default())
            .await
            .ok()?
            .items
            .len()
            + services.list(&Default::default()).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await
    .unwrap();
    // Data is retained by default: the keys that encrypt the database's contents stay.
    let keys = ns.api::<k8s_openapi::api::core::v1::Secret>();
    assert!(
        keys.get_opt("minimal-keys").await.unwrap().is_some(),
        "retained keys were deleted"
    );
}

#[tokio::test]
async fn turning_on_ingress_and_autoscaling_adds_their_objects_and_turning_off_removes_them() {
    let client = client().await;
    let (ns, api) = ready_instance(&client, "toggle").await;
    let on = json!({"spec": {"ingress": {"className": "nginx"},
        "api": {"autoscaling": {"minReplicas": 2, "maxReplicas": 4}}}});
    merge_patch(&api, "minimal", on).await;
    let ingresses = ns.api::<Ingress>();
    let hpas = ns.api::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>();
    await_until(TIMEOUT, "the Ingress and the api HPA", || async {
        (ingresses.get_opt("minimal").await.ok()?.is_some()
            && hpas.get_opt("minimal-api").await.ok()?.is_some())
        .then_some(())
    })
    .await
    .unwrap();
    let off = json!({"spec": {"ingress": null, "api": {"autoscaling": null}}});
    merge_patch(&api, "minimal", off).await;
    await_until(TIMEOUT, "the Ingress and the HPA to be pruned", || async {
        (ingresses.get_opt("minimal").await.ok()?.is_none()
            && hpas.get_opt("minimal-api").await.ok()?.is_none())
        .then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_generated_keys_are_created_once_and_kept() {
    let client = client().await;
    let (ns, api) = ready_instance(&client, "keys").await;
    let secrets = ns.api::<k8s_openapi::api::core::v1::Secret>();
    let keys = secrets.get("minimal-keys").await.unwrap();
    let data = keys.data.clone().unwrap();
    for key in [
        "secretKeyBase",
        "oauthSigningKey",
        "encryptionKey",
        "vapidPrivateKey",
        "vapidPublicKey",
    ] {
        assert!(!data[key].0.is_empty(), "{key}");
    }
    assert!(
        keys.metadata.owner_references.is_none(),
        "retained keys outlive the instance"
    );

    merge_patch(
        &api,
        "minimal",
        json!({"spec": {"registrations": "closed"}}),
    )
    .await;
    await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "Ready at generation 2",
        ready_at(2),
    )
    .await
    .unwrap();
    let again = secrets.get("minimal-keys").await.unwrap();
    assert_eq!(
        again.metadata.resource_version, keys.metadata.resource_version,
        "never rewritten"
    );
}

#[tokio::test]
async fn a_missing_existing_secret_is_reported_until_it_appears() {
    let client = client().await;
    let (ns, api) = create_instance(&client, "existing", |f| {
        f.spec.existing_secret = Some("own-keys".into());
    })
    .await;
    let f = await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "SecretNotFound",
        degraded("SecretNotFound"),
    )
    .await
    .unwrap();
    assert!(
        f.condition("Degraded")
            .unwrap()
            .message
            .contains("own-keys")
    );

    let secrets = ns.api::<k8s_openapi::api::core::v1::Secret>();
    let partial: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "own-keys"}, "stringData": {"secretKeyBase": "x"}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &partial)
        .await
        .unwrap();
    // Referenced Secrets are watched: the change is seen at once, not at the retry a minute
    // later, hence the short wait.
    let f = await_instance(
        &api,
        "minimal",
        SECRET_WATCH,
        "SecretKeyMissing",
        degraded("SecretKeyMissing"),
    )
    .await
    .unwrap();
    assert!(
        f.condition("Degraded")
            .unwrap()
            .message
            .contains("vapidPublicKey")
    );

    let full = json!({"stringData": {"oauthSigningKey": "x", "encryptionKey": "x",
        "vapidPrivateKey": "x", "vapidPublicKey": "x"}});
    merge_patch(&secrets, "own-keys", full).await;
    await_instance(
        &api,
        "minimal",
        SECRET_WATCH,
        "Ready with the user's keys",
        ready_at(1),
    )
    .await
    .unwrap();
    assert!(
        secrets.get_opt("minimal-keys").await.unwrap().is_none(),
        "no generated keys beside the user's"
    );
}

#[tokio::test]
async fn a_paused_instance_is_left_alone_until_the_annotation_goes() {
    let client = client().await;
    let (ns, api) = ready_instance(&client, "paused").await;
    let pause = json!({"metadata": {"annotations": {"fedi.dev/paused": "true"}}});
    merge_patch(&api, "minimal", pause).await;
    let paused = |f: &FediInstance| {
        f.condition(fedi_operator::status::READY)
            .is_some_and(|c| c.reason == "Paused")
    };
    await_instance(&api, "minimal", TIMEOUT, "Paused", paused)
        .await
        .unwrap();
    let deployments = ns.api::<Deployment>();
    deployments
        .delete("minimal-streamer", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        deployments
            .get_opt("minimal-streamer")
            .await
            .unwrap()
            .is_none(),
        "a paused instance is not repaired"
    );
    let resume = json!({"metadata": {"annotations": {"fedi.dev/paused": null}}});
    merge_patch(&api, "minimal", resume).await;
    await_until(
        Duration::from_secs(10),
        "the Deployment restored",
        || async { deployments.get_opt("minimal-streamer").await.unwrap() },
    )
    .await
    .unwrap();
}
