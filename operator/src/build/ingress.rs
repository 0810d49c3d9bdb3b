use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, ServiceBackendPort,
};

use super::Ctx;
use crate::crd::{IngressKind, IssuerKind};

/// Where Mastodon clients open the streaming API; everything else goes to the api.
pub const STREAMING_PATH: &str = "/api/v1/streaming";

/// An Ingress for the domain, when `spec.ingress` asks for one.
pub(crate) fn build(ctx: &Ctx) -> Option<Ingress> {
    let spec = ctx
        .fedi
        .spec
        .ingress
        .as_ref()
        .filter(|i| i.kind == IngressKind::Ingress)?;
    let domain = &ctx.fedi.spec.domain;
    let backend = |component: &str| IngressBackend {
        service: Some(IngressServiceBackend {
            name: ctx.child_name(component),
            port: Some(ServiceBackendPort {
                name: Some("http".into()),
                number: None,
            }),
        }),
        resource: None,
    };
    let path = |p: &str, component: &str| HTTPIngressPath {
        path: Some(p.into()),
        path_type: "Prefix".into(),
        backend: backend(component),
    };
    let mut annotations: BTreeMap<String, String> = spec.annotations.clone();
    let tls = spec.tls.as_ref().map(|tls| {
        if let Some(issuer) = &tls.issuer_ref {
            let key = match issuer.kind {
                IssuerKind::ClusterIssuer => "cert-manager.io/cluster-issuer",
                IssuerKind::Issuer => "cert-manager.io/issuer",
            };
            annotations.insert(key.into(), issuer.name.clone());
        }
        IngressTLS {
            hosts: Some(vec![domain.clone()]),
            secret_name: Some(
                tls.secret_name
                    .clone()
                    .unwrap_or_else(|| ctx.child_name("tls")),
            ),
        }
    });
    let mut metadata = ctx.metadata(ctx.name.clone(), None);
    metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    Some(Ingress {
        metadata,
        spec: Some(K8sIngressSpec {
            ingress_class_name: spec.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(domain.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![path(STREAMING_PATH, "streamer"), path("/", "api")],
                }),
            }]),
            tls: tls.map(|t| vec![t]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Ctx, Defaults};
    use super::*;
    use serde_json::json;

    fn ingress(spec: serde_json::Value) -> Option<Ingress> {
        let defaults = Defaults::default();
        let fedi = instance(spec);
        build(&Ctx::new(&fedi, &defaults).unwrap())
    }

    #[test]
    fn streaming_goes_to_the_streamer_and_the_rest_to_the_api() {
        let i = ingress(json!({"domain": "social.example", "ingress": {"className": "nginx"}}))
            .unwrap();
        let spec = i.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let rule = &spec.rules.unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("social.example"));
        let routes: Vec<_> = rule
            .http
            .as_ref()
            .unwrap()
            .paths
            .iter()
            .map(|p| {
                (
                    p.path.clone().unwrap(),
                    p.backend.service.as_ref().unwrap().name.clone(),
                )
            })
            .collect();
        assert_eq!(
            routes,
            [
                ("/api/v1/streaming".into(), "social-streamer".into()),
                ("/".into(), "social-api".to_string())
            ]
        );
        assert!(spec.tls.is_none());
    }

    #[test]
    fn tls_comes_from_cert_manager_or_an_existing_secret() {
        let issued = ingress(json!({"domain": "social.example",
            "ingress": {"tls": {"issuerRef": {"name": "letsencrypt"}}}}))
        .unwrap();
        assert_eq!(
            issued
                .metadata
                .annotations
                .unwrap()
                .get("cert-manager.io/cluster-issuer")
                .map(String::as_str),
            Some("letsencrypt")
        );
        assert_eq!(
            issued.spec.unwrap().tls.unwrap()[0].secret_name.as_deref(),
            Some("social-tls")
        );
        let own = ingress(
            json!({"domain": "social.example", "ingress": {"tls": {"secretName": "mine"}}}),
        )
        .unwrap();
        assert_eq!(
            own.spec.unwrap().tls.unwrap()[0].secret_name.as_deref(),
            Some("mine")
        );
    }

    #[test]
    fn no_ingress_without_spec_ingress_or_for_an_httproute() {
        assert!(ingress(json!({"domain": "social.example"})).is_none());
        assert!(
            ingress(json!({"domain": "social.example",
            "ingress": {"kind": "HTTPRoute", "parentRefs": [{"name": "gw"}]}}))
            .is_none()
        );
    }
}
