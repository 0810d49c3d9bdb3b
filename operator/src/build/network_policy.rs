//! Default deny for the instance's pods, then only the flows the server needs: clients to
//! the api and streamer; DNS; the data services by port; other servers on 80/443 of public
//! addresses only, so a pod can never reach the Kubernetes API or a cloud metadata endpoint.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Ctx;
use super::deployments::{API_PORT, STREAMER_PORT};
use super::env::managed;

/// Private, loopback, link-local (cloud metadata) and carrier-grade NAT ranges.
pub const NON_PUBLIC_V4: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "100.64.0.0/10",
    "0.0.0.0/8",
];
/// (IPv4-mapped addresses are refused by the API server in an ipBlock; the IPv4 rule covers
/// them.)
pub const NON_PUBLIC_V6: &[&str] = &["fc00::/7", "fe80::/10", "::1/128"];

fn port(protocol: &str, n: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(n)),
        end_port: None,
    }
}

pub(crate) fn build(ctx: &Ctx) -> NetworkPolicy {
    let spec = &ctx.fedi.spec;
    // The server's pods only: the data services' pods have policies of their own.
    let instance = BTreeMap::from([
        ("app.kubernetes.io/instance".to_string(), ctx.name.clone()),
        (
            "app.kubernetes.io/name".to_string(),
            "fedi-server".to_string(),
        ),
    ]);

    // Data services: in-cluster (managed) or anywhere (external), always by their port.
    let mut service_ports = vec![port("UDP", 53), port("TCP", 53)];
    let db_port = spec
        .database
        .external
        .as_ref()
        .map(|e| e.port)
        .unwrap_or(5432);
    service_ports.push(port("TCP", db_port));
    service_ports.push(port("TCP", 6379));
    // An external store or search cluster may listen on any port (in-cluster MinIO on 9000);
    // 80 and 443 of public addresses are open anyway.
    let port_of = |url: &str| crate::dependencies::probe::url_host_port(url).map(|(_, p)| p);
    let s3_port = match &spec.object_storage.external {
        None => Some(managed::S3_PORT),
        Some(s3) => port_of(&s3.endpoint),
    };
    let search_port = spec.search.as_ref().and_then(|s| match &s.external {
        None => Some(managed::SEARCH_PORT),
        Some(external) => port_of(&external.url),
    });
    for p in [s3_port, search_port].into_iter().flatten() {
        if p != 80 && p != 443 {
            service_ports.push(port("TCP", p.into()));
        }
    }
    if let Some(smtp) = &spec.smtp {
        service_ports.push(port("TCP", smtp.port));
    }

    let public = |cidr: &str, except: &[&str]| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.into(),
            except: Some(except.iter().map(|s| s.to_string()).collect()),
        }),
        ..Default::default()
    };
    NetworkPolicy {
        metadata: ctx.metadata(ctx.name.clone(), None),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(instance),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                // From wherever the ingress controller or gateway runs.
                from: None,
                ports: Some(vec![port("TCP", API_PORT), port("TCP", STREAMER_PORT)]),
            }]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: None,
                    ports: Some(service_ports),
                },
                NetworkPolicyEgressRule {
                    to: Some(vec![
                        public("0.0.0.0/0", NON_PUBLIC_V4),
                        public("::/0", NON_PUBLIC_V6),
                    ]),
                    ports: Some(vec![port("TCP", 80), port("TCP", 443)]),
                },
            ]),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Ctx, Defaults};
    use super::*;
    use serde_json::json;

    fn ports_of(rule: &NetworkPolicyEgressRule) -> Vec<IntOrString> {
        rule.ports
            .iter()
            .flatten()
            .filter_map(|p| p.port.clone())
            .collect()
    }

    #[test]
    fn only_server_pods_are_selected_and_each_service_port_is_open() {
        let defaults = Defaults::default();
        let cases = [
            (json!({"domain": "s.example"}), vec![5432, 6379, 8333]),
            (
                json!({"domain": "s.example", "search": {"managed": {}}}),
                vec![5432, 6379, 8333, 9200],
            ),
            (
                json!({"domain": "s.example", "objectStorage": {"external": {
                    "endpoint": "http://minio.storage:9000", "bucket": "media",
                    "credentialsSecretRef": {"name": "s3"}}},
                    "search": {"external": {"url": "https://search.example"}}}),
                vec![5432, 6379, 9000],
            ),
        ];
        for (spec, want) in cases {
            let fedi = instance(spec.clone());
            let np = build(&Ctx::new(&fedi, &defaults).unwrap()).spec.unwrap();
            let selector = np.pod_selector.unwrap().match_labels.unwrap();
            assert_eq!(selector["app.kubernetes.io/name"], "fedi-server");
            let mut tcp: Vec<i32> = ports_of(&np.egress.unwrap()[0])
                .into_iter()
                .filter_map(|p| match p {
                    IntOrString::Int(n) if n != 53 => Some(n),
                    _ => None,
                })
                .collect();
            tcp.sort();
            assert_eq!(tcp, want, "{spec}");
        }
    }

    #[test]
    fn https_egress_never_reaches_private_or_metadata_addresses() {
        let defaults = Defaults::default();
        let fedi = minimal();
        let np = build(&Ctx::new(&fedi, &defaults).unwrap());
        let egress = np.spec.unwrap().egress.unwrap();
        let web = &egress[1];
        assert_eq!(ports_of(web), [IntOrString::Int(80), IntOrString::Int(443)]);
        for peer in web.to.as_ref().unwrap() {
            let except = peer.ip_block.as_ref().unwrap().except.as_ref().unwrap();
            assert!(
                except
                    .iter()
                    .any(|c| c == "169.254.0.0/16" || c == "fe80::/10"),
                "{except:?}"
            );
        }
        let v4 = web.to.as_ref().unwrap()[0].ip_block.as_ref().unwrap();
        for private in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "127.0.0.0/8",
        ] {
            assert!(
                v4.except.as_ref().unwrap().iter().any(|c| c == private),
                "{private}"
            );
        }
        // The other rule opens service ports only, never 443 (the Kubernetes API's port).
        let services = ports_of(&egress[0]);
        assert!(
            !services.contains(&IntOrString::Int(443))
                && !services.contains(&IntOrString::Int(6443))
        );
    }
}
