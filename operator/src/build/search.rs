//! The managed full-text search: an OpenSearch cluster in a StatefulSet, every node eligible
//! as cluster manager and holding data.
//!
//! Without TLS or authentication (the security plugin is off): it is reachable only inside
//! the cluster, and its NetworkPolicy admits only the instance's server pods and the
//! operator on the HTTP port, and only its own nodes on the transport port.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, PodTemplateSpec, Probe, Service, ServicePort,
    ServiceSpec, TCPSocketAction,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::env::managed;
use super::redis::{
    claim_retention, claim_template, container_security, disruption_budget, dns, empty_dir,
    label_selector, labels, metadata, mount, operator_pods, pod_identity_env, pod_spec, pods,
    server_pods, tcp,
};
use super::{Child, Ctx};
use crate::crd::ManagedSearch;

const COMPONENT: &str = "search";
const PRODUCT: &str = "opensearch";
const HTTP_PORT: i32 = managed::SEARCH_PORT as i32;
const TRANSPORT_PORT: i32 = 9300;
/// The `opensearch` user of the official image, owner of its files.
const UID: i64 = 1000;
const HOME: &str = "/usr/share/opensearch";

pub(crate) fn build(ctx: &Ctx) -> Vec<Child> {
    let Some(search) = ctx
        .fedi
        .spec
        .search
        .as_ref()
        .and_then(|s| s.managed.as_ref())
    else {
        return Vec::new();
    };
    // The policy first, so that no pod ever runs unprotected.
    let mut out = vec![
        Child::new(&network_policy(ctx)),
        Child::new(&headless_service(ctx)),
        Child::new(&client_service(ctx)),
        Child::new(&stateful_set(ctx, search)),
    ];
    // A budget of one unavailable pod on a single node would not protect anything.
    if search.replicas > 1 {
        out.push(Child::new(&disruption_budget(
            ctx,
            ctx.child_name(COMPONENT),
            COMPONENT,
            PRODUCT,
        )));
    }
    out
}

fn headless_name(ctx: &Ctx) -> String {
    ctx.child_name("search-headless")
}

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// Discovery: `discovery.seed_hosts` resolves it to every node, ready or not, since a node
/// becomes ready only once the cluster has formed.
fn headless_service(ctx: &Ctx) -> Service {
    Service {
        metadata: metadata(ctx, headless_name(ctx), COMPONENT, PRODUCT),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(ctx.selector(COMPONENT)),
            ports: Some(vec![
                service_port("http", HTTP_PORT),
                service_port("transport", TRANSPORT_PORT),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn client_service(ctx: &Ctx) -> Service {
    Service {
        metadata: metadata(ctx, ctx.child_name(COMPONENT), COMPONENT, PRODUCT),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(ctx.selector(COMPONENT)),
            ports: Some(vec![service_port("http", HTTP_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env(ctx: &Ctx, search: &ManagedSearch) -> Vec<EnvVar> {
    let value = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    };
    let statefulset = ctx.child_name(COMPONENT);
    let nodes: Vec<String> = (0..search.replicas)
        .map(|i| format!("{statefulset}-{i}"))
        .collect();
    let mut env = pod_identity_env();
    // The image's entry point turns variables with dots into `-E` settings.
    env.extend([
        value("cluster.name", statefulset.clone()),
        EnvVar {
            name: "node.name".into(),
            value: Some("$(POD_NAME)".into()),
            value_from: None,
        },
        value("network.host", "0.0.0.0".into()),
        value("discovery.seed_hosts", headless_name(ctx)),
        // Read only when the cluster first forms; later changes of `replicas` are joins.
        value("cluster.initial_cluster_manager_nodes", nodes.join(",")),
        // mmap would need vm.max_map_count raised on the node, which takes a privileged
        // init container that the restricted Pod Security Standard forbids; niofs instead.
        value("node.store.allow_mmap", "false".into()),
        value(
            "OPENSEARCH_JAVA_OPTS",
            format!("-Xms{0} -Xmx{0}", search.heap),
        ),
        // No TLS, no users: in-cluster only, behind the NetworkPolicy (see the module).
        value("DISABLE_SECURITY_PLUGIN", "true".into()),
        value("DISABLE_INSTALL_DEMO_CONFIG", "true".into()),
        // A second JVM, for metrics nobody reads.
        value("DISABLE_PERFORMANCE_ANALYZER_AGENT_CLI", "true".into()),
    ]);
    env
}

fn stateful_set(ctx: &Ctx, search: &ManagedSearch) -> StatefulSet {
    let selector = ctx.selector(COMPONENT);
    let labels = labels(ctx, COMPONENT, PRODUCT);
    let image = ctx.defaults.search_image.clone();
    let config_dir = format!("{HOME}/config");

    // OpenSearch writes its keystore into its config directory at every start, so the
    // directory is an emptyDir, filled from the image first; the root file system then
    // stays read-only.
    let copy_config = Container {
        name: "config".into(),
        image: Some(image.clone()),
        command: Some(vec![
            "cp".into(),
            "-R".into(),
            format!("{config_dir}/."),
            "/mnt/config/".into(),
        ]),
        resources: search.resources.clone(),
        security_context: Some(container_security()),
        volume_mounts: Some(vec![mount("config", "/mnt/config", false)]),
        ..Default::default()
    };

    let http = |path: &str| HTTPGetAction {
        path: Some(path.into()),
        port: IntOrString::String("http".into()),
        ..Default::default()
    };
    let tcp_socket = || TCPSocketAction {
        port: IntOrString::String("http".into()),
        host: None,
    };
    let container = Container {
        name: PRODUCT.into(),
        image: Some(image),
        env: Some(env(ctx, search)),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: HTTP_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some("transport".into()),
                container_port: TRANSPORT_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        // A JVM start and the loading of large indices: up to five minutes.
        startup_probe: Some(Probe {
            tcp_socket: Some(tcp_socket()),
            period_seconds: Some(10),
            failure_threshold: Some(30),
            ..Default::default()
        }),
        // `local`: this node answers from its own view, without waiting for the manager.
        readiness_probe: Some(Probe {
            http_get: Some(http("/_cluster/health?local=true")),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        liveness_probe: Some(Probe {
            tcp_socket: Some(tcp_socket()),
            period_seconds: Some(20),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        resources: search.resources.clone(),
        security_context: Some(container_security()),
        volume_mounts: Some(vec![
            mount("data", &format!("{HOME}/data"), false),
            mount("config", &config_dir, false),
            mount("logs", &format!("{HOME}/logs"), false),
            // The JVM's and the entry point's temporary files.
            mount("tmp", "/tmp", false),
        ]),
        ..Default::default()
    };

    let mut pod = pod_spec(
        UID,
        vec![container],
        vec![empty_dir("config"), empty_dir("logs"), empty_dir("tmp")],
        &selector,
    );
    pod.init_containers = Some(vec![copy_config]);

    StatefulSet {
        metadata: metadata(ctx, ctx.child_name(COMPONENT), COMPONENT, PRODUCT),
        spec: StatefulSetSpec {
            replicas: Some(search.replicas),
            selector: label_selector(selector.clone()),
            service_name: Some(headless_name(ctx)),
            // The first cluster forms only once a majority of its initial nodes is up:
            // started one by one behind readiness, the first would wait forever.
            pod_management_policy: Some("Parallel".into()),
            persistent_volume_claim_retention_policy: Some(claim_retention(ctx)),
            volume_claim_templates: Some(vec![claim_template(&search.storage, &labels)]),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

fn network_policy(ctx: &Ctx) -> NetworkPolicy {
    let own = pods(ctx.selector(COMPONENT));
    NetworkPolicy {
        metadata: metadata(ctx, ctx.child_name(COMPONENT), COMPONENT, PRODUCT),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(label_selector(ctx.selector(COMPONENT))),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    // The operator creates the indices' templates and checks the health.
                    from: Some(vec![server_pods(ctx), operator_pods()]),
                    ports: Some(vec![tcp(HTTP_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![own.clone()]),
                    ports: Some(vec![tcp(TRANSPORT_PORT)]),
                },
            ]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(vec![own]),
                    ports: Some(vec![tcp(TRANSPORT_PORT)]),
                },
                dns(),
            ]),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::redis::checks::*;
    use super::super::{Ctx, Defaults};
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    fn built(extra: Value) -> Vec<Child> {
        let mut spec = json!({"domain": "social.example"});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let fedi = instance(spec);
        build(&Ctx::new(&fedi, &Defaults::default()).unwrap())
    }

    fn managed(search: Value) -> Value {
        json!({"search": {"managed": search}})
    }

    fn sts(children: &[Child]) -> StatefulSet {
        typed(children, "StatefulSet/social-search")
    }

    fn pod(children: &[Child]) -> PodSpec {
        sts(children).spec.template.spec.unwrap()
    }

    fn env_of(pod: &PodSpec) -> BTreeMap<String, EnvVar> {
        pod.containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.clone()))
            .collect()
    }

    fn selector() -> BTreeMap<String, String> {
        labels_of(&[
            ("app.kubernetes.io/instance", "social"),
            ("app.kubernetes.io/component", "search"),
        ])
    }

    #[test]
    fn only_a_managed_search_is_built() {
        let cases: [(Value, &[&str]); 4] = [
            (json!({}), &[]),
            (
                json!({"search": {"external": {"url": "https://os.example"}}}),
                &[],
            ),
            (
                managed(json!({})),
                &[
                    "NetworkPolicy/social-search",
                    "Service/social-search-headless",
                    "Service/social-search",
                    "StatefulSet/social-search",
                ],
            ),
            (
                managed(json!({"replicas": 3})),
                &[
                    "NetworkPolicy/social-search",
                    "Service/social-search-headless",
                    "Service/social-search",
                    "StatefulSet/social-search",
                    "PodDisruptionBudget/social-search",
                ],
            ),
        ];
        for (extra, expected) in cases {
            let names: Vec<_> = built(extra.clone()).iter().map(Child::describe).collect();
            assert_eq!(names, expected, "{extra}");
        }
    }

    #[test]
    fn the_cluster_forms_from_its_initial_nodes() {
        let cases = [
            (json!({}), 1, "social-search-0", "-Xms1g -Xmx1g"),
            (
                json!({"replicas": 3, "heap": "512m"}),
                3,
                "social-search-0,social-search-1,social-search-2",
                "-Xms512m -Xmx512m",
            ),
        ];
        for (search, replicas, initial, java) in cases {
            let children = built(managed(search.clone()));
            let s = sts(&children).spec;
            assert_eq!(s.replicas, Some(replicas), "{search}");
            assert_eq!(s.service_name.as_deref(), Some("social-search-headless"));
            assert_eq!(s.pod_management_policy.as_deref(), Some("Parallel"));
            let env = env_of(s.template.spec.as_ref().unwrap());
            let value = |name: &str| env[name].value.clone().unwrap();
            assert_eq!(value("cluster.initial_cluster_manager_nodes"), initial);
            assert_eq!(value("OPENSEARCH_JAVA_OPTS"), java);
            assert_eq!(value("cluster.name"), "social-search");
            assert_eq!(value("discovery.seed_hosts"), "social-search-headless");
            assert_eq!(value("node.name"), "$(POD_NAME)");
            assert_eq!(value("node.store.allow_mmap"), "false");
            assert_eq!(value("DISABLE_SECURITY_PLUGIN"), "true");
            assert_eq!(value("DISABLE_INSTALL_DEMO_CONFIG"), "true");
            let pod_name = env["POD_NAME"].value_from.clone().unwrap().field_ref;
            assert_eq!(pod_name.unwrap().field_path, "metadata.name");
            // `$(POD_NAME)` expands only if POD_NAME is defined earlier in the list.
            let order: Vec<_> = s.template.spec.unwrap().containers[0]
                .env
                .iter()
                .flatten()
                .map(|e| e.name.clone())
                .collect();
            let at = |n: &str| order.iter().position(|e| e == n).unwrap();
            assert!(at("POD_NAME") < at("node.name"));
        }
    }

    #[test]
    fn services_and_the_budget_select_the_nodes() {
        let children = built(managed(json!({"replicas": 3})));
        let headless: Service = typed(&children, "Service/social-search-headless");
        let hs = headless.spec.unwrap();
        assert_eq!(hs.cluster_ip.as_deref(), Some("None"));
        assert_eq!(hs.publish_not_ready_addresses, Some(true));
        assert_eq!(hs.selector.unwrap(), selector());
        let ports: Vec<_> = hs.ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(ports, [9200, 9300]);
        let client: Service = typed(&children, "Service/social-search");
        let cs = client.spec.unwrap();
        assert_eq!(cs.selector.unwrap(), selector());
        let ports: Vec<_> = cs.ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(ports, [9200]);
        let pdb: PodDisruptionBudget = typed(&children, "PodDisruptionBudget/social-search");
        let pdb = pdb.spec.unwrap();
        assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(pdb.selector.unwrap().match_labels.unwrap(), selector());
        let probe = pod(&children).containers[0]
            .readiness_probe
            .clone()
            .unwrap();
        let get = probe.http_get.unwrap();
        assert_eq!(get.path.as_deref(), Some("/_cluster/health?local=true"));
        assert_eq!(get.port, IntOrString::String("http".into()));
    }

    #[test]
    fn objects_and_pods_are_labelled_as_opensearch() {
        let children = built(managed(json!({"replicas": 3})));
        labelled(&children, "search", "opensearch");
        let s = sts(&children).spec;
        let pod_labels = s.template.metadata.unwrap().labels.unwrap();
        assert_eq!(pod_labels["app.kubernetes.io/name"], "opensearch");
        assert_eq!(s.selector.match_labels.unwrap(), selector());
        assert!(selector().iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    }

    #[test]
    fn no_credential_is_in_the_objects() {
        no_secret_material(
            &built(managed(json!({"replicas": 3}))),
            &["password", "OPENSEARCH_INITIAL_ADMIN_PASSWORD"],
        );
    }

    #[test]
    fn volumes_are_deleted_only_under_the_delete_policy() {
        for (policy, when_deleted) in [
            (None, "Retain"),
            (Some("Retain"), "Retain"),
            (Some("Delete"), "Delete"),
        ] {
            let mut extra = managed(json!({"storage": {"size": "30Gi"}}));
            if let Some(p) = policy {
                extra["deletionPolicy"] = json!(p);
            }
            let s = sts(&built(extra)).spec;
            let retention = s.persistent_volume_claim_retention_policy.unwrap();
            assert_eq!(retention.when_deleted.as_deref(), Some(when_deleted));
            assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
            let claim = s.volume_claim_templates.unwrap()[0].clone();
            assert_eq!(claim.metadata.name.as_deref(), Some("data"));
            let requests = claim.spec.unwrap().resources.unwrap().requests.unwrap();
            assert_eq!(requests["storage"].0, "30Gi");
        }
    }

    #[test]
    fn the_network_policy_admits_clients_and_nodes_only() {
        let np: NetworkPolicy = typed(&built(managed(json!({}))), "NetworkPolicy/social-search");
        let np = np.spec.unwrap();
        assert_eq!(np.pod_selector.unwrap().match_labels.unwrap(), selector());
        assert_eq!(np.policy_types.unwrap(), ["Ingress", "Egress"]);
        let ingress = np.ingress.unwrap();
        assert_eq!(ingress.len(), 2);
        clients_may_connect(&ingress[0], &[9200]);
        let own = vec![(false, selector())];
        assert_eq!(peers(&ingress[1].from), own);
        assert_eq!(port_numbers(&ingress[1].ports), [("TCP".to_string(), 9300)]);
        let egress = np.egress.unwrap();
        assert_eq!(egress.len(), 2);
        assert_eq!(peers(&egress[0].to), own);
        assert_eq!(port_numbers(&egress[0].ports), [("TCP".to_string(), 9300)]);
        is_dns(&egress[1]);
    }

    #[test]
    fn pods_meet_the_restricted_pod_security_standard_with_a_read_only_root() {
        let children = built(managed(json!({"resources": {"limits": {"memory": "2Gi"}}})));
        restricted(&children);
        let pod = pod(&children);
        let psc = pod.security_context.clone().unwrap();
        assert_eq!(
            (psc.run_as_user, psc.run_as_group, psc.fs_group),
            (Some(1000), Some(1000), Some(1000))
        );
        let c = &pod.containers[0];
        assert_eq!(
            c.resources.clone().unwrap().limits.unwrap()["memory"].0,
            "2Gi"
        );
        let mounts: BTreeMap<_, _> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.mount_path.as_str(), m.name.as_str()))
            .collect();
        assert_eq!(
            mounts,
            BTreeMap::from([
                ("/tmp", "tmp"),
                ("/usr/share/opensearch/config", "config"),
                ("/usr/share/opensearch/data", "data"),
                ("/usr/share/opensearch/logs", "logs"),
            ])
        );
        let init = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.image, c.image);
        assert_eq!(
            init.command.clone().unwrap(),
            ["cp", "-R", "/usr/share/opensearch/config/.", "/mnt/config/"]
        );
        assert_eq!(init.volume_mounts.clone().unwrap()[0].name, "config");
        for name in ["config", "logs", "tmp"] {
            let v = pod.volumes.iter().flatten().find(|v| v.name == name);
            assert!(v.is_some_and(|v| v.empty_dir.is_some()), "{name}");
        }
    }
}
