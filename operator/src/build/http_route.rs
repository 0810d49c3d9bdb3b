//! A Gateway API HTTPRoute, for clusters that route through a Gateway instead of an Ingress.
//! There is no k8s-openapi type for it (Gateway API is a set of CRDs), so it is built as JSON.
//! TLS terminates at the Gateway's listener, which the route attaches to.

use kube::api::{ApiResource, DynamicObject};
use serde_json::json;

use super::ingress::STREAMING_PATH;
use super::{Child, Ctx};
use crate::crd::IngressKind;

pub fn resource() -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    }
}

pub(crate) fn build(ctx: &Ctx) -> Option<Child> {
    let spec = ctx
        .fedi
        .spec
        .ingress
        .as_ref()
        .filter(|i| i.kind == IngressKind::HttpRoute)?;
    let parents: Vec<_> = spec
        .parent_refs
        .iter()
        .map(|p| {
            let mut r =
                json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": p.name});
            if let Some(ns) = &p.namespace {
                r["namespace"] = json!(ns);
            }
            if let Some(section) = &p.section_name {
                r["sectionName"] = json!(section);
            }
            r
        })
        .collect();
    let rule = |path: &str, component: &str| {
        json!({
            "matches": [{"path": {"type": "PathPrefix", "value": path}}],
            "backendRefs": [{"name": ctx.child_name(component), "port": 80}],
        })
    };
    let mut metadata = ctx.metadata(ctx.name.clone(), None);
    if !spec.annotations.is_empty() {
        metadata.annotations = Some(spec.annotations.clone());
    }
    let object = DynamicObject {
        types: Some(kube::api::TypeMeta {
            api_version: resource().api_version,
            kind: resource().kind,
        }),
        metadata,
        data: json!({"spec": {
            "parentRefs": parents,
            "hostnames": [ctx.fedi.spec.domain],
            "rules": [rule(STREAMING_PATH, "streamer"), rule("/", "api")],
        }}),
    };
    Some(Child {
        resource: resource(),
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Ctx, Defaults};
    use super::*;

    #[test]
    fn the_route_attaches_to_its_gateways_and_splits_streaming_off() {
        let defaults = Defaults::default();
        let fedi = instance(
            json!({"domain": "social.example", "ingress": {"kind": "HTTPRoute",
            "parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}]}}),
        );
        let child = build(&Ctx::new(&fedi, &defaults).unwrap()).unwrap();
        assert_eq!(child.describe(), "HTTPRoute/social");
        let spec = &child.object.data["spec"];
        assert_eq!(spec["parentRefs"][0]["namespace"], "gateways");
        assert_eq!(spec["hostnames"], json!(["social.example"]));
        assert_eq!(
            spec["rules"][0]["matches"][0]["path"]["value"],
            "/api/v1/streaming"
        );
        assert_eq!(
            spec["rules"][0]["backendRefs"][0]["name"],
            "social-streamer"
        );
        assert_eq!(spec["rules"][1]["backendRefs"][0]["name"], "social-api");
        let owners = child.object.metadata.owner_references.as_ref().unwrap();
        assert_eq!(owners[0].name, "social");
    }

    #[test]
    fn an_ingress_spec_makes_no_route() {
        let defaults = Defaults::default();
        let fedi = instance(json!({"domain": "social.example", "ingress": {}}));
        assert!(build(&Ctx::new(&fedi, &defaults).unwrap()).is_none());
    }
}
