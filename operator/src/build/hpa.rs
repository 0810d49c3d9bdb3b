use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use super::{Ctx, Workload};

/// CPU autoscaling for a workload that asks for it. Suspension wins: a suspended instance
/// gets no HPA, so nothing scales it back up.
pub(crate) fn build(ctx: &Ctx, w: &Workload) -> Option<HorizontalPodAutoscaler> {
    let scaling = w.autoscaling.as_ref().filter(|_| !ctx.fedi.spec.suspend)?;
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
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(scaling.target_cpu_utilization),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        },
        ..Default::default()
    })
}
