//! How the instance is reached: an Ingress or a Gateway API HTTPRoute, with TLS.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// External access to the instance. The streaming API is routed to the streamer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.kind != 'HTTPRoute' || size(self.parentRefs) > 0").message("an HTTPRoute needs at least one parentRefs entry (the Gateway)"))]
pub struct IngressSpec {
    /// `Ingress` (networking.k8s.io) or `HTTPRoute` (Gateway API).
    #[serde(default)]
    pub kind: IngressKind,
    /// IngressClass of the Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Gateways an HTTPRoute attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub parent_refs: Vec<GatewayRef>,
    /// Extra annotations of the Ingress or HTTPRoute.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// TLS for the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum IngressKind {
    #[default]
    Ingress,
    #[serde(rename = "HTTPRoute")]
    HttpRoute,
}

/// A Gateway API parent reference.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRef {
    /// Name of the Gateway.
    pub name: String,
    /// Its namespace; the FediInstance's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A listener of the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// Certificates: from cert-manager (`issuerRef`) or an existing Secret (`secretName`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.issuerRef) != has(self.secretName)").message("set exactly one of tls.issuerRef and tls.secretName"))]
pub struct TlsSpec {
    /// A cert-manager Issuer or ClusterIssuer that issues the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    /// An existing `kubernetes.io/tls` Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct IssuerRef {
    /// Name of the issuer.
    pub name: String,
    /// `Issuer` or `ClusterIssuer`.
    #[serde(default)]
    pub kind: IssuerKind,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum IssuerKind {
    Issuer,
    #[default]
    ClusterIssuer,
}
