//! Worker autoscaling on queue latency: without KEDA an HPA on the External metric
//! `fedi_jobs_oldest_age_seconds`, one per queue; once KEDA's ScaledObject CRD is installed
//! (noticed without restarting the operator), a ScaledObject with a prometheus trigger
//! instead, and the HPA is gone. The api keeps its CPU HPA throughout. One test, because it
//! installs a cluster-wide CRD.

use std::time::Duration;

use fedi_e2e::*;
use fedi_operator::build::worker_scaling::{METRIC, scaled_object_resource};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn an_autoscaled_pool_gets_an_external_metric_hpa_then_a_keda_scaled_object() {
    let client = client().await;
    let had_keda = ThirdPartyCrds::present(&client, "keda").await;
    let (ns, api) = create_instance(&client, "scaling", |f| {
        let mut spec = serde_json::to_value(&f.spec).unwrap();
        spec["api"]["autoscaling"] = json!({"minReplicas": 1, "maxReplicas": 3});
        spec["worker"] = json!({"pools": [
            {"name": "default", "scheduler": true,
             "queues": [{"name": "default"}, {"name": "mailers"}]},
            {"name": "push", "queues": [{"name": "push"}, {"name": "pull"}],
             "autoscaling": {"minReplicas": 2, "maxReplicas": 10, "targetOldestAgeSeconds": 15}},
        ]});
        spec["autoscaling"] =
            json!({"prometheus": {"serverAddress": "http://prometheus.monitoring.svc:9090"}});
        f.spec = serde_json::from_value(spec).unwrap();
    })
    .await;
    let hpas = ns.api::<HorizontalPodAutoscaler>();
    let scaled: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns.name, &scaled_object_resource());

    let _crds = if had_keda {
        eprintln!("KEDA is installed on this cluster: the HPA without it is not tested");
        None
    } else {
        await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
            .await
            .unwrap();
        let hpa = hpas.get("minimal-worker-push").await.unwrap();
        let spec = hpa.spec;
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 10));
        assert_eq!(spec.scale_target_ref.name, "minimal-worker-push");
        let per_queue: Vec<(String, String, String)> = spec
            .metrics
            .unwrap()
            .into_iter()
            .map(|m| {
                let e = m.external.expect("an External metric");
                let queue = e.metric.selector.unwrap().match_labels.unwrap()["queue"].clone();
                (e.metric.name, queue, e.target.value.unwrap().0)
            })
            .collect();
        assert_eq!(
            per_queue,
            [
                (METRIC.to_string(), "push".to_string(), "15".to_string()),
                (METRIC.to_string(), "pull".to_string(), "15".to_string()),
            ]
        );
        // The pool without autoscaling keeps its replicas; the autoscaled one leaves them to
        // the autoscaler.
        assert!(
            hpas.get_opt("minimal-worker-default")
                .await
                .unwrap()
                .is_none()
        );
        let deployments = ns.api::<Deployment>();
        let push = deployments.get("minimal-worker-push").await.unwrap();
        assert!(
            !push
                .managed_fields()
                .iter()
                .filter(|m| m.manager.as_deref() == Some("fedi-operator"))
                .any(|m| m
                    .fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.to_string().contains("\"f:replicas\""))),
            "the operator owns no replica count of an autoscaled pool"
        );
        Some(ThirdPartyCrds::install(&client, "keda").await)
    };

    // KEDA installed: a ScaledObject for the pool, and its HPA pruned.
    let object = await_until(TIMEOUT, "the ScaledObject", || {
        let scaled = scaled.clone();
        async move { scaled.get_opt("minimal-worker-push").await.ok().flatten() }
    })
    .await
    .unwrap();
    let f = api.get("minimal").await.unwrap();
    assert_eq!(object.owner_references()[0].uid, f.uid().unwrap());
    let spec = &object.data["spec"];
    assert_eq!(spec["scaleTargetRef"]["name"], "minimal-worker-push");
    assert_eq!(
        (
            spec["minReplicaCount"].clone(),
            spec["maxReplicaCount"].clone()
        ),
        (json!(2), json!(10))
    );
    let trigger = &spec["triggers"][0];
    assert_eq!(trigger["type"], "prometheus");
    assert_eq!(
        trigger["metadata"]["serverAddress"],
        "http://prometheus.monitoring.svc:9090"
    );
    assert_eq!(trigger["metadata"]["threshold"], "15");
    let query = trigger["metadata"]["query"].as_str().unwrap();
    assert!(
        query.contains(METRIC)
            && query.contains(&format!("namespace=\"{}\"", ns.name))
            && query.contains("queue=~\"push|pull\""),
        "{query}"
    );
    await_until(TIMEOUT, "the worker HPA to be pruned", || {
        let hpas = hpas.clone();
        async move {
            hpas.get_opt("minimal-worker-push")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await
    .unwrap();
    assert!(
        scaled
            .get_opt("minimal-worker-default")
            .await
            .unwrap()
            .is_none()
    );
    // Watched once KEDA exists: a deleted ScaledObject is back within seconds.
    let first_uid = object.uid();
    scaled
        .delete("minimal-worker-push", &Default::default())
        .await
        .unwrap();
    await_until(
        Duration::from_secs(10),
        "the ScaledObject to be restored",
        || {
            let (scaled, first_uid) = (scaled.clone(), first_uid.clone());
            async move {
                scaled
                    .get_opt("minimal-worker-push")
                    .await
                    .ok()
                    .flatten()
                    .filter(|o| o.metadata.deletion_timestamp.is_none())
                    .filter(|o| o.uid() != first_uid)
            }
        },
    )
    .await
    .unwrap();
    // The api keeps scaling on CPU.
    let api_hpa = hpas.get("minimal-api").await.unwrap();
    let metric = &api_hpa.spec.metrics.unwrap()[0];
    assert_eq!(metric.resource.as_ref().unwrap().name, "cpu");
}
