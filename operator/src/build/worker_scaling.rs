//! Worker autoscaling on queue latency: the age of the oldest job waiting in one of a
//! pool's queues, which every worker serves on `/metrics` as
//! `fedi_jobs_oldest_age_seconds{queue}`. Two forms, chosen by the controller
//! (`select`): a KEDA ScaledObject with a prometheus trigger when KEDA is installed and a
//! Prometheus is named, else an HPA with one External metric per queue (the HPA scales to
//! the largest proposal, so the oldest queue decides), served by a metrics adapter.

use std::collections::HashSet;

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, ExternalMetricSource, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec, MetricTarget,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::{Child, Ctx, Workload};

/// The worker metric the autoscalers follow.
pub const METRIC: &str = "fedi_jobs_oldest_age_seconds";
pub const KEDA_GROUP: &str = "keda.sh";

pub fn scaled_object_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(KEDA_GROUP, "v1alpha1", "ScaledObject"),
        "scaledobjects",
    )
}

/// The HPA on the External metric, for an autoscaled pool (none while suspended).
pub(crate) fn hpa(ctx: &Ctx, w: &Workload) -> Option<HorizontalPodAutoscaler> {
    let (scaling, queues) = w
        .queue_scaling
        .as_ref()
        .filter(|_| !ctx.fedi.spec.suspend)?;
    let metrics = queues
        .iter()
        .map(|queue| MetricSpec {
            type_: "External".into(),
            external: Some(ExternalMetricSource {
                metric: MetricIdentifier {
                    name: METRIC.into(),
                    selector: Some(LabelSelector {
                        match_labels: Some([("queue".to_string(), queue.to_string())].into()),
                        ..Default::default()
                    }),
                },
                target: MetricTarget {
                    type_: "Value".into(),
                    value: Some(Quantity(scaling.target_oldest_age_seconds.to_string())),
                    ..Default::default()
                },
            }),
            ..Default::default()
        })
        .collect();
    Some(HorizontalPodAutoscaler {
        metadata: ctx.metadata(ctx.child_name(&w.component), Some(&w.component)),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: ctx.child_name(&w.component),
            },
            min_replicas: Some(scaling.min_replicas),
            max_replicas: scaling.max_replicas,
            metrics: Some(metrics),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// The KEDA ScaledObject, for an autoscaled pool when a Prometheus is named.
pub(crate) fn scaled_object(ctx: &Ctx, w: &Workload) -> Option<Child> {
    let (scaling, queues) = w
        .queue_scaling
        .as_ref()
        .filter(|_| !ctx.fedi.spec.suspend)?;
    let prometheus = ctx.fedi.spec.autoscaling.as_ref()?.prometheus.as_ref()?;
    let name = ctx.child_name(&w.component);
    // Every worker pod of the instance reports every queue (the queues live in Redis), so
    // any of them will do; the pod name keeps other instances of the namespace out.
    let query = format!(
        "max(max_over_time({METRIC}{{namespace=\"{}\",pod=~\"{}-worker-.*\",queue=~\"{}\"}}[1m]))",
        ctx.namespace,
        ctx.name,
        queues.join("|")
    );
    let resource = scaled_object_resource();
    let mut object = DynamicObject::new(&name, &resource);
    object.metadata = ctx.metadata(name.clone(), Some(&w.component));
    object.data = json!({
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "triggers": [{
                "type": "prometheus",
                "metadata": {
                    "serverAddress": prometheus.server_address,
                    "query": query,
                    "threshold": scaling.target_oldest_age_seconds.to_string(),
                },
            }],
        }
    });
    Some(Child { resource, object })
}

/// Keeps one form per pool: the ScaledObject where KEDA is installed (it makes its own
/// HPA), the HPA otherwise.
pub fn select(children: &mut Vec<Child>, keda: bool) {
    if !keda {
        children.retain(|c| c.resource.group != KEDA_GROUP);
        return;
    }
    let scaled: HashSet<String> = children
        .iter()
        .filter(|c| c.resource.group == KEDA_GROUP)
        .map(|c| c.name())
        .collect();
    children
        .retain(|c| !(c.resource.kind == "HorizontalPodAutoscaler" && scaled.contains(&c.name())));
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Defaults, children};
    use super::*;

    fn spec(prometheus: bool) -> crate::crd::FediInstance {
        let mut spec = serde_json::json!({
            "domain": "social.example",
            "worker": {"pools": [
                {"name": "default", "scheduler": true, "queues": [{"name": "default"}],
                 "autoscaling": {"minReplicas": 1, "maxReplicas": 8}},
                {"name": "push", "queues": [{"name": "push"}, {"name": "pull"}],
                 "autoscaling": {"minReplicas": 2, "maxReplicas": 20, "targetOldestAgeSeconds": 10}},
            ]},
        });
        if prometheus {
            spec["autoscaling"] =
                serde_json::json!({"prometheus": {"serverAddress": "http://prom:9090"}});
        }
        instance(spec)
    }

    fn kinds(children: &[Child]) -> Vec<(String, String)> {
        let mut v: Vec<_> = children
            .iter()
            .filter(|c| c.name().contains("worker"))
            .filter(|c| c.resource.kind != "Deployment" && c.resource.kind != "PodDisruptionBudget")
            .map(|c| (c.resource.kind.clone(), c.name()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keda_gets_a_scaled_object_per_pool_and_without_it_an_external_metric_hpa() {
        let defaults = Defaults::default();
        let fedi = spec(true);
        let all = children(&fedi, &defaults).unwrap();
        let mut with_keda = all.clone();
        select(&mut with_keda, true);
        assert_eq!(
            kinds(&with_keda),
            [
                ("ScaledObject".into(), "social-worker-default".into()),
                ("ScaledObject".into(), "social-worker-push".into())
            ]
        );
        let so = with_keda
            .iter()
            .find(|c| c.name() == "social-worker-push" && c.resource.kind == "ScaledObject")
            .unwrap();
        let so_spec = &so.object.data["spec"];
        assert_eq!(so_spec["maxReplicaCount"], 20);
        let trigger = &so_spec["triggers"][0];
        assert_eq!(trigger["type"], "prometheus");
        assert_eq!(trigger["metadata"]["serverAddress"], "http://prom:9090");
        assert_eq!(trigger["metadata"]["threshold"], "10");
        let query = trigger["metadata"]["query"].as_str().unwrap();
        assert!(
            query.contains("fedi_jobs_oldest_age_seconds{")
                && query.contains("queue=~\"push|pull\""),
            "{query}"
        );

        let mut without = all;
        select(&mut without, false);
        assert_eq!(
            kinds(&without),
            [
                (
                    "HorizontalPodAutoscaler".into(),
                    "social-worker-default".into()
                ),
                (
                    "HorizontalPodAutoscaler".into(),
                    "social-worker-push".into()
                )
            ]
        );
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(
            serde_json::to_value(
                &without
                    .iter()
                    .find(|c| {
                        c.name() == "social-worker-push"
                            && c.resource.kind == "HorizontalPodAutoscaler"
                    })
                    .unwrap()
                    .object,
            )
            .unwrap(),
        )
        .unwrap();
        let metrics = hpa.spec.metrics.unwrap();
        let queues: Vec<_> = metrics
            .iter()
            .map(|m| {
                let e = m.external.as_ref().unwrap();
                assert_eq!(e.metric.name, METRIC);
                assert_eq!(e.target.value, Some(Quantity("10".into())));
                e.metric
                    .selector
                    .as_ref()
                    .unwrap()
                    .match_labels
                    .as_ref()
                    .unwrap()["queue"]
                    .clone()
            })
            .collect();
        assert_eq!(queues, ["push", "pull"]);

        // KEDA without a Prometheus to ask: the HPA.
        let mut no_prom = children(&spec(false), &defaults).unwrap();
        select(&mut no_prom, true);
        assert!(
            kinds(&no_prom)
                .iter()
                .all(|(k, _)| k == "HorizontalPodAutoscaler")
        );
        assert_eq!(kinds(&no_prom).len(), 2);
    }
}
