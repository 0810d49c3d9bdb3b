use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Ctx, Workload};

/// Drains take the pods of a client-facing workload one at a time, so a node upgrade never
/// takes the whole API down. Workers need none: their jobs go back to the queue.
pub(crate) fn build(ctx: &Ctx, w: &Workload) -> Option<PodDisruptionBudget> {
    w.serves_clients.then(|| PodDisruptionBudget {
        metadata: ctx.metadata(ctx.child_name(&w.component), Some(&w.component)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(ctx.selector(&w.component)),
                match_expressions: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}
