use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Ctx, Workload};

/// A ClusterIP Service in front of a workload that clients reach (api, streamer).
pub(crate) fn build(ctx: &Ctx, w: &Workload) -> Option<Service> {
    w.serves_clients.then(|| Service {
        metadata: ctx.metadata(ctx.child_name(&w.component), Some(&w.component)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(ctx.selector(&w.component)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}
