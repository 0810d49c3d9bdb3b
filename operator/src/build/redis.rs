//! The managed Redis: Valkey in a StatefulSet, either a primary with replicas (`standalone`)
//! or the nodes of a Redis Cluster (`cluster`), which the operator joins and gives slots.
//!
//! The password never appears here: the operator generates the Secret
//! `managed::redis_secret`, whose `auth.conf` (`requirepass`, `masterauth`) the server's
//! config includes, and whose `password` the probes read through the environment.
//!
//! The pieces every managed data service shares (labels, restricted pod security, claims and
//! their retention, network policy peers) live at the bottom of this file, for `object_store`
//! and `search` too.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, ExecAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec,
    TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deployments::CONFIG_CHECKSUM_ANNOTATION;
use super::env::managed;
use super::{Child, Ctx, config_map};
use crate::crd::{DeletionPolicy, ManagedRedis, RedisMode, StorageSpec};

const COMPONENT: &str = "redis";
const PRODUCT: &str = "valkey";
const PORT: i32 = managed::REDIS_PORT as i32;
/// The cluster bus: the client port + 10000, as Redis Cluster fixes it.
const BUS_PORT: i32 = PORT + 10000;
/// The `valkey` user of the official image, owner of its files.
const UID: i64 = 999;
const CONFIG_DIR: &str = "/etc/valkey";
const AUTH_DIR: &str = "/etc/redis-auth";

pub(crate) fn build(ctx: &Ctx) -> Vec<Child> {
    let Some(redis) = &ctx.fedi.spec.redis.managed else {
        return Vec::new();
    };
    let cluster = redis.mode == RedisMode::Cluster;
    let config = config(ctx, cluster);
    // The policy first, so that no pod ever runs unprotected.
    let budget = disruption_budget(ctx, ctx.child_name(COMPONENT), COMPONENT, PRODUCT);
    vec![
        Child::new(&network_policy(ctx, cluster)),
        Child::new(&config),
        Child::new(&headless_service(ctx, cluster)),
        Child::new(&client_service(ctx, cluster)),
        Child::new(&stateful_set(ctx, redis, &config)),
        Child::new(&budget),
    ]
}

/// Nodes: every shard's primary and its replicas, or one primary and its replicas.
fn replicas(redis: &ManagedRedis) -> i32 {
    let per_shard = 1 + redis.replicas_per_shard;
    match redis.mode {
        RedisMode::Cluster => redis.shards * per_shard,
        RedisMode::Standalone => per_shard,
    }
}

fn headless_name(ctx: &Ctx) -> String {
    ctx.child_name("redis-headless")
}

fn config(ctx: &Ctx, cluster: bool) -> ConfigMap {
    let mut lines = vec![
        format!("port {PORT}"),
        "dir /data".to_string(),
        "appendonly yes".to_string(),
        // The job queue lives here: evicting a key would silently lose jobs, so a full
        // memory refuses writes instead.
        "maxmemory-policy noeviction".to_string(),
        // Authentication guards it; protected mode would refuse the other pods.
        "protected-mode no".to_string(),
    ];
    if cluster {
        lines.extend(
            [
                "cluster-enabled yes",
                // On the volume: a restarted node keeps its identity and its slots.
                "cluster-config-file /data/nodes.conf",
                "cluster-node-timeout 5000",
                // Pod IPs change on restart; the per-pod DNS names of the headless Service
                // do not, so nodes and clients find each other by name.
                "cluster-preferred-endpoint-type hostname",
                // The operator places replicas (one per shard, as the spec says); Redis moving
                // them on its own would fight it.
                "cluster-allow-replica-migration no",
            ]
            .map(String::from),
        );
    }
    // Last, so that nothing above can override the credentials.
    lines.push(format!(
        "include {AUTH_DIR}/{}",
        managed::REDIS_AUTH_CONF_KEY
    ));
    let mut text = lines.join("\n");
    text.push('\n');
    ConfigMap {
        metadata: metadata(ctx, ctx.child_name("redis-config"), COMPONENT, PRODUCT),
        data: Some(BTreeMap::from([("redis.conf".to_string(), text)])),
        ..Default::default()
    }
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

fn ports(cluster: bool) -> Vec<(&'static str, i32)> {
    let mut ports = vec![("redis", PORT)];
    if cluster {
        ports.push(("bus", BUS_PORT));
    }
    ports
}

/// Gives every pod a stable DNS name, resolvable before it is ready: replicas and cluster
/// nodes must reach each other while they are still syncing.
fn headless_service(ctx: &Ctx, cluster: bool) -> Service {
    Service {
        metadata: metadata(ctx, headless_name(ctx), COMPONENT, PRODUCT),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(ctx.selector(COMPONENT)),
            ports: Some(
                ports(cluster)
                    .into_iter()
                    .map(|(name, port)| service_port(name, port))
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What the server connects to. Standalone replicas are read-only, so it reaches only the
/// primary; a cluster client learns every node from whichever it reaches first.
fn client_service(ctx: &Ctx, cluster: bool) -> Service {
    let mut selector = ctx.selector(COMPONENT);
    if !cluster {
        selector.insert(
            "statefulset.kubernetes.io/pod-name".into(),
            format!("{}-0", ctx.child_name(COMPONENT)),
        );
    }
    Service {
        metadata: metadata(ctx, ctx.child_name(COMPONENT), COMPONENT, PRODUCT),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector),
            ports: Some(vec![service_port("redis", PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The per-pod part of the command line, which only the pod knows (its name).
fn start_script(ctx: &Ctx, cluster: bool) -> String {
    let headless = headless_name(ctx);
    let conf = format!("{CONFIG_DIR}/redis.conf");
    if cluster {
        format!(
            "exec valkey-server {conf} \
             --cluster-announce-hostname \"$POD_NAME.{headless}.$POD_NAMESPACE.svc\"\n"
        )
    } else {
        let primary = format!(
            "{}-0.{headless}.$POD_NAMESPACE.svc",
            ctx.child_name(COMPONENT)
        );
        format!(
            "if [ \"${{POD_NAME##*-}}\" = 0 ]; then exec valkey-server {conf}; fi\n\
             exec valkey-server {conf} --replicaof \"{primary}\" {PORT}\n"
        )
    }
}

fn cli_probe(script: &str, period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn stateful_set(ctx: &Ctx, redis: &ManagedRedis, config: &ConfigMap) -> StatefulSet {
    let cluster = redis.mode == RedisMode::Cluster;
    let selector = ctx.selector(COMPONENT);
    let secret = managed::redis_secret(&ctx.name);

    let mut env = pod_identity_env();
    // valkey-cli reads it from the environment, so the password is in no command line.
    env.push(EnvVar {
        name: "REDISCLI_AUTH".into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.clone(),
                key: managed::REDIS_PASSWORD_KEY.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
    });

    let ping = format!("valkey-cli -p {PORT} ping 2>&1");
    let container = Container {
        name: PRODUCT.into(),
        image: Some(ctx.defaults.redis_image.clone()),
        command: Some(vec!["sh".into(), "-c".into(), start_script(ctx, cluster)]),
        env: Some(env),
        ports: Some(
            ports(cluster)
                .into_iter()
                .map(|(name, port)| ContainerPort {
                    name: Some(name.into()),
                    container_port: port,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                })
                .collect(),
        ),
        readiness_probe: Some(cli_probe(&format!("[ \"$({ping})\" = PONG ]"), 5, 2)),
        // Loading a large append-only file, or a replica waiting for its primary, is alive:
        // restarting it would only start the wait over.
        liveness_probe: Some(cli_probe(
            &format!(
                "case \"$({ping})\" in PONG|*LOADING*|*MASTERDOWN*) exit 0;; *) exit 1;; esac"
            ),
            10,
            6,
        )),
        resources: redis.resources.clone(),
        security_context: Some(container_security()),
        volume_mounts: Some(vec![
            mount("data", "/data", false),
            mount("config", CONFIG_DIR, true),
            mount("auth", AUTH_DIR, true),
            mount("tmp", "/tmp", false),
        ]),
        ..Default::default()
    };

    let volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: ctx.child_name("redis-config"),
                ..Default::default()
            }),
            ..Default::default()
        },
        // Only the key the server includes: the URL and the bare password stay out of the
        // file system.
        secret_volume("auth", &secret, managed::REDIS_AUTH_CONF_KEY),
        empty_dir("tmp"),
    ];

    let labels = labels(ctx, COMPONENT, PRODUCT);
    StatefulSet {
        metadata: metadata(ctx, ctx.child_name(COMPONENT), COMPONENT, PRODUCT),
        spec: StatefulSetSpec {
            replicas: Some(replicas(redis)),
            selector: label_selector(selector.clone()),
            service_name: Some(headless_name(ctx)),
            // Replicas wait for the primary and cluster nodes for each other: starting them
            // one by one behind readiness would only slow the first start down.
            pod_management_policy: Some("Parallel".into()),
            persistent_volume_claim_retention_policy: Some(claim_retention(ctx)),
            volume_claim_templates: Some(vec![claim_template(&redis.storage, &labels)]),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_CHECKSUM_ANNOTATION.to_string(),
                        config_map::checksum(config),
                    )])),
                    ..Default::default()
                }),
                spec: Some(pod_spec(UID, vec![container], volumes, &selector)),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

fn network_policy(ctx: &Ctx, cluster: bool) -> NetworkPolicy {
    let own = pods(ctx.selector(COMPONENT));
    let mut peer_ports = vec![tcp(PORT)];
    if cluster {
        peer_ports.push(tcp(BUS_PORT));
    }
    NetworkPolicy {
        metadata: metadata(ctx, ctx.child_name(COMPONENT), COMPONENT, PRODUCT),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(label_selector(ctx.selector(COMPONENT))),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    // The operator bootstraps the cluster and checks its state.
                    from: Some(vec![server_pods(ctx), operator_pods()]),
                    ports: Some(vec![tcp(PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![own.clone()]),
                    ports: Some(peer_ports.clone()),
                },
            ]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(vec![own]),
                    ports: Some(peer_ports),
                },
                dns(),
            ]),
        }),
    }
}

// ------------------------------------------------- shared by the managed data services

/// The instance's labels, but named after the product: the instance's own NetworkPolicy
/// selects `app.kubernetes.io/name=fedi-server` and must never apply to these pods.
pub(super) fn labels(ctx: &Ctx, component: &str, product: &str) -> BTreeMap<String, String> {
    let mut labels = ctx.labels(Some(component));
    labels.insert("app.kubernetes.io/name".into(), product.into());
    labels
}

pub(super) fn metadata(ctx: &Ctx, name: String, component: &str, product: &str) -> ObjectMeta {
    let mut metadata = ctx.metadata(name, Some(component));
    metadata.labels = Some(labels(ctx, component, product));
    metadata
}

pub(super) fn label_selector(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    }
}

/// What the restricted Pod Security Standard asks of every container, plus a read-only root
/// file system: writes go to the volume or to an emptyDir.
pub(super) fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..Default::default()
    }
}

/// A pod of a data service: `uid` owns the volume (through `fsGroup`), no API token (they
/// never talk to the API server), and one pod per node where the cluster allows.
pub(super) fn pod_spec(
    uid: i64,
    containers: Vec<Container>,
    volumes: Vec<Volume>,
    selector: &BTreeMap<String, String>,
) -> PodSpec {
    PodSpec {
        automount_service_account_token: Some(false),
        // Hundreds of instances in one namespace would otherwise give every pod thousands
        // of variables it never reads.
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(uid),
            run_as_group: Some(uid),
            fs_group: Some(uid),
            // Skips the recursive chown of a large volume on every start.
            fs_group_change_policy: Some("OnRootMismatch".into()),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        containers,
        topology_spread_constraints: Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "kubernetes.io/hostname".into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(label_selector(selector.clone())),
            ..Default::default()
        }]),
        volumes: Some(volumes),
        ..Default::default()
    }
}

/// `POD_NAME` and `POD_NAMESPACE`, from the downward API.
pub(super) fn pod_identity_env() -> Vec<EnvVar> {
    [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ]
    .into_iter()
    .map(|(name, path)| EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: path.into(),
            }),
            ..Default::default()
        }),
    })
    .collect()
}

pub(super) fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

pub(super) fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

/// One key of a Secret as a file of the same name, readable by the pod's group only.
pub(super) fn secret_volume(name: &str, secret: &str, key: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            items: Some(vec![KeyToPath {
                key: key.into(),
                path: key.into(),
                ..Default::default()
            }]),
            default_mode: Some(0o440),
            optional: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `data` volume of each pod.
pub(super) fn claim_template(
    storage: &StorageSpec,
    labels: &BTreeMap<String, String>,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), storage.size.clone())])),
                limits: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The volumes are the data: they go with the instance only under `deletionPolicy: Delete`,
/// and never on a scale down, which a scale up may want back.
pub(super) fn claim_retention(ctx: &Ctx) -> StatefulSetPersistentVolumeClaimRetentionPolicy {
    let when_deleted = match ctx.fedi.spec.deletion_policy {
        DeletionPolicy::Delete => "Delete",
        DeletionPolicy::Retain => "Retain",
    };
    StatefulSetPersistentVolumeClaimRetentionPolicy {
        when_deleted: Some(when_deleted.into()),
        when_scaled: Some("Retain".into()),
    }
}

/// Drains take one pod at a time.
pub(super) fn disruption_budget(
    ctx: &Ctx,
    name: String,
    component: &str,
    product: &str,
) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: metadata(ctx, name, component, product),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(label_selector(ctx.selector(component))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some("TCP".into()),
        port: Some(IntOrString::Int(port)),
        end_port: None,
    }
}

/// Pods of the instance's namespace with these labels.
pub(super) fn pods(labels: BTreeMap<String, String>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(label_selector(labels)),
        ..Default::default()
    }
}

/// The instance's server pods (api, streamer, workers, migrations).
pub(super) fn server_pods(ctx: &Ctx) -> NetworkPolicyPeer {
    pods(BTreeMap::from([
        ("app.kubernetes.io/instance".to_string(), ctx.name.clone()),
        (
            "app.kubernetes.io/name".to_string(),
            "fedi-server".to_string(),
        ),
    ]))
}

/// The operator's pods, in whatever namespace it is installed.
pub(super) fn operator_pods() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        pod_selector: Some(label_selector(BTreeMap::from([(
            "app.kubernetes.io/name".to_string(),
            "fedi-operator".to_string(),
        )]))),
        ..Default::default()
    }
}

/// Name resolution, wherever the cluster's DNS runs.
pub(super) fn dns() -> NetworkPolicyEgressRule {
    let port = |protocol: &str| NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(53)),
        end_port: None,
    };
    NetworkPolicyEgressRule {
        to: None,
        ports: Some(vec![port("UDP"), port("TCP")]),
    }
}

/// Checks shared by the data services' tests.
#[cfg(test)]
pub(super) mod checks {
    use super::*;

    /// Every pod template among `children` meets the restricted Pod Security Standard, with
    /// a read-only root file system.
    pub fn restricted(children: &[Child]) {
        let mut pods = 0;
        for child in children.iter().filter(|c| c.resource.kind == "StatefulSet") {
            let sts: StatefulSet =
                serde_json::from_value(serde_json::to_value(&child.object).unwrap()).unwrap();
            let pod = sts.spec.template.spec.unwrap();
            let psc = pod.security_context.unwrap();
            assert_eq!(psc.run_as_non_root, Some(true), "{}", child.describe());
            assert!(psc.run_as_user.is_some_and(|u| u > 0));
            assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
            assert_eq!(pod.automount_service_account_token, Some(false));
            for c in pod
                .containers
                .iter()
                .chain(pod.init_containers.iter().flatten())
            {
                let sc = c.security_context.clone().unwrap();
                assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
                assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
                assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
                assert_eq!(
                    sc.capabilities.unwrap().drop.unwrap(),
                    ["ALL"],
                    "{}",
                    c.name
                );
                assert!(sc.privileged.is_none() && sc.run_as_user != Some(0));
            }
            pods += 1;
        }
        assert!(pods > 0, "no pod template to check");
    }

    /// Every object names the product, not the server, and belongs to the instance.
    pub fn labelled(children: &[Child], component: &str, product: &str) {
        for child in children {
            let labels = child.object.metadata.labels.clone().unwrap();
            for (k, v) in [
                ("app.kubernetes.io/name", product),
                ("app.kubernetes.io/instance", "social"),
                ("app.kubernetes.io/component", component),
                ("app.kubernetes.io/managed-by", "fedi-operator"),
                ("app.kubernetes.io/part-of", "fedi"),
            ] {
                assert_eq!(
                    labels.get(k).map(String::as_str),
                    Some(v),
                    "{}",
                    child.describe()
                );
            }
        }
    }

    /// No credential can be in the objects: none of `forbidden` appears, and every
    /// variable that looks like a credential is a reference to a Secret.
    pub fn no_secret_material(children: &[Child], forbidden: &[&str]) {
        assert!(children.iter().all(|c| c.resource.kind != "Secret"));
        let text = serde_json::to_string(
            &children
                .iter()
                .map(|c| serde_json::to_value(&c.object).unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        for word in forbidden {
            assert!(!text.contains(word), "{word} in {text}");
        }
        for child in children.iter().filter(|c| c.resource.kind == "StatefulSet") {
            let sts: StatefulSet =
                serde_json::from_value(serde_json::to_value(&child.object).unwrap()).unwrap();
            let pod = sts.spec.template.spec.unwrap();
            for c in pod
                .containers
                .iter()
                .chain(pod.init_containers.iter().flatten())
            {
                for var in c.env.iter().flatten() {
                    let name = var.name.to_ascii_uppercase();
                    if ["AUTH", "PASS", "SECRET", "KEY"]
                        .iter()
                        .any(|w| name.contains(w))
                    {
                        assert!(var.value.is_none(), "{} has a literal value", var.name);
                        assert!(
                            var.value_from
                                .as_ref()
                                .is_some_and(|s| s.secret_key_ref.is_some()),
                            "{} is not a Secret reference",
                            var.name
                        );
                    }
                }
            }
        }
    }

    /// The peers of a rule, as (namespace selector present, pod selector labels).
    pub fn peers(peers: &Option<Vec<NetworkPolicyPeer>>) -> Vec<(bool, BTreeMap<String, String>)> {
        peers
            .iter()
            .flatten()
            .map(|p| {
                assert!(p.ip_block.is_none(), "no address block is ever opened");
                (
                    p.namespace_selector.is_some(),
                    p.pod_selector
                        .as_ref()
                        .and_then(|s| s.match_labels.clone())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    pub fn port_numbers(ports: &Option<Vec<NetworkPolicyPort>>) -> Vec<(String, i32)> {
        ports
            .iter()
            .flatten()
            .map(|p| match (&p.protocol, &p.port) {
                (Some(proto), Some(IntOrString::Int(n))) => (proto.clone(), *n),
                other => panic!("unexpected port {other:?}"),
            })
            .collect()
    }

    pub fn labels_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Ingress from the instance's server pods and the operator, on `ports`.
    pub fn clients_may_connect(rule: &NetworkPolicyIngressRule, ports: &[i32]) {
        assert_eq!(
            peers(&rule.from),
            [
                (
                    false,
                    labels_of(&[
                        ("app.kubernetes.io/instance", "social"),
                        ("app.kubernetes.io/name", "fedi-server"),
                    ])
                ),
                (
                    true,
                    labels_of(&[("app.kubernetes.io/name", "fedi-operator")])
                ),
            ]
        );
        let namespaces = rule.from.as_ref().unwrap()[1]
            .namespace_selector
            .as_ref()
            .unwrap();
        assert!(
            namespaces.match_labels.is_none() && namespaces.match_expressions.is_none(),
            "the operator may run in any namespace"
        );
        let expected: Vec<_> = ports.iter().map(|p| ("TCP".to_string(), *p)).collect();
        assert_eq!(port_numbers(&rule.ports), expected);
    }

    pub fn is_dns(rule: &NetworkPolicyEgressRule) {
        assert!(rule.to.is_none());
        assert_eq!(
            port_numbers(&rule.ports),
            [("UDP".to_string(), 53), ("TCP".to_string(), 53)]
        );
    }

    pub fn typed<K: serde::de::DeserializeOwned>(children: &[Child], describe: &str) -> K {
        let child = children
            .iter()
            .find(|c| c.describe() == describe)
            .unwrap_or_else(|| panic!("no {describe}"));
        serde_json::from_value(serde_json::to_value(&child.object).unwrap()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Ctx, Defaults};
    use super::checks::*;
    use super::*;
    use serde_json::{Value, json};

    fn spec(redis: Value, extra: Value) -> Value {
        let mut spec = json!({"domain": "social.example", "redis": redis});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        spec
    }

    fn built(spec: Value) -> Vec<Child> {
        let fedi = instance(spec);
        build(&Ctx::new(&fedi, &Defaults::default()).unwrap())
    }

    fn cluster() -> Value {
        json!({"managed": {"mode": "cluster", "shards": 3, "replicasPerShard": 1}})
    }

    fn sts(children: &[Child]) -> StatefulSet {
        typed(children, "StatefulSet/social-redis")
    }

    fn pod(children: &[Child]) -> PodSpec {
        sts(children).spec.template.spec.unwrap()
    }

    #[test]
    fn only_a_managed_redis_is_built() {
        let cases = [
            (json!({"domain": "social.example"}), 6),
            (spec(cluster(), json!({})), 6),
            (
                spec(
                    json!({"external": {"urlSecretRef": {"name": "r", "key": "url"}}}),
                    json!({}),
                ),
                0,
            ),
        ];
        for (spec, count) in cases {
            assert_eq!(built(spec.clone()).len(), count, "{spec}");
        }
        let names: Vec<_> = built(json!({"domain": "social.example"}))
            .iter()
            .map(Child::describe)
            .collect();
        assert_eq!(
            names,
            [
                "NetworkPolicy/social-redis",
                "ConfigMap/social-redis-config",
                "Service/social-redis-headless",
                "Service/social-redis",
                "StatefulSet/social-redis",
                "PodDisruptionBudget/social-redis",
            ]
        );
    }

    #[test]
    fn replicas_follow_the_mode() {
        let cases = [
            (json!({"managed": {}}), 2),
            (json!({"managed": {"replicasPerShard": 0}}), 1),
            (json!({"managed": {"replicasPerShard": 2, "shards": 5}}), 3),
            (json!({"managed": {"mode": "cluster"}}), 6),
            (
                json!({"managed": {"mode": "cluster", "replicasPerShard": 0}}),
                3,
            ),
            (
                json!({"managed": {"mode": "cluster", "shards": 5, "replicasPerShard": 2}}),
                15,
            ),
        ];
        for (redis, expected) in cases {
            let s = sts(&built(spec(redis.clone(), json!({}))));
            assert_eq!(s.spec.replicas, Some(expected), "{redis}");
        }
    }

    #[test]
    fn cluster_and_standalone_differ_where_they_must() {
        for (redis, cluster) in [(json!({"managed": {}}), false), (cluster(), true)] {
            let children = built(spec(redis, json!({})));
            let config: ConfigMap = typed(&children, "ConfigMap/social-redis-config");
            let conf = &config.data.unwrap()["redis.conf"];
            for line in [
                "port 6379",
                "dir /data",
                "appendonly yes",
                "maxmemory-policy noeviction",
                "protected-mode no",
            ] {
                assert!(conf.lines().any(|l| l == line), "{line} in {conf}");
            }
            assert_eq!(
                conf.lines().last(),
                Some("include /etc/redis-auth/auth.conf")
            );
            for line in [
                "cluster-enabled yes",
                "cluster-config-file /data/nodes.conf",
                "cluster-node-timeout 5000",
                "cluster-preferred-endpoint-type hostname",
            ] {
                assert_eq!(conf.lines().any(|l| l == line), cluster, "{line}");
            }

            let headless: Service = typed(&children, "Service/social-redis-headless");
            let hs = headless.spec.unwrap();
            assert_eq!(hs.cluster_ip.as_deref(), Some("None"));
            assert_eq!(hs.publish_not_ready_addresses, Some(true));
            let ports: Vec<_> = hs.ports.unwrap().iter().map(|p| p.port).collect();
            let expected: &[i32] = if cluster { &[6379, 16379] } else { &[6379] };
            assert_eq!(ports, expected);

            let client: Service = typed(&children, "Service/social-redis");
            let cs = client.spec.unwrap();
            assert_eq!(
                cs.ports.unwrap().iter().map(|p| p.port).collect::<Vec<_>>(),
                [6379]
            );
            let mut selector = ctx_selector();
            if !cluster {
                selector.insert(
                    "statefulset.kubernetes.io/pod-name".into(),
                    "social-redis-0".into(),
                );
            }
            assert_eq!(cs.selector.unwrap(), selector);

            let s = sts(&children).spec;
            assert_eq!(s.service_name.as_deref(), Some("social-redis-headless"));
            assert_eq!(s.pod_management_policy.as_deref(), Some("Parallel"));
            let c = &s.template.spec.unwrap().containers[0];
            assert_eq!(c.image.as_deref(), Some("docker.io/valkey/valkey:8.1.4"));
            let script = &c.command.as_ref().unwrap()[2];
            let announce = "--cluster-announce-hostname \
                \"$POD_NAME.social-redis-headless.$POD_NAMESPACE.svc\"";
            let replicaof = "--replicaof \
                \"social-redis-0.social-redis-headless.$POD_NAMESPACE.svc\" 6379";
            assert_eq!(script.contains(announce), cluster, "{script}");
            assert_eq!(script.contains(replicaof), !cluster, "{script}");
            assert!(script.contains("valkey-server /etc/valkey/redis.conf"));
            let container_ports: Vec<_> = c
                .ports
                .as_ref()
                .unwrap()
                .iter()
                .map(|p| p.container_port)
                .collect();
            assert_eq!(container_ports, expected);
        }
    }

    fn ctx_selector() -> BTreeMap<String, String> {
        labels_of(&[
            ("app.kubernetes.io/instance", "social"),
            ("app.kubernetes.io/component", "redis"),
        ])
    }

    #[test]
    fn the_password_is_only_ever_referenced() {
        for redis in [json!({"managed": {}}), cluster()] {
            let children = built(spec(redis, json!({})));
            no_secret_material(&children, &["requirepass", "masterauth", "--pass", " -a "]);
            let pod = pod(&children);
            let c = &pod.containers[0];
            let auth = c
                .env
                .iter()
                .flatten()
                .find(|e| e.name == "REDISCLI_AUTH")
                .unwrap();
            let r = auth.value_from.as_ref().unwrap().secret_key_ref.as_ref();
            assert_eq!(
                r.map(|r| (r.name.as_str(), r.key.as_str())),
                Some(("social-redis", "password"))
            );
            let auth_volume = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == "auth")
                .unwrap();
            let secret = auth_volume.secret.as_ref().unwrap();
            assert_eq!(secret.secret_name.as_deref(), Some("social-redis"));
            let keys: Vec<_> = secret.items.iter().flatten().map(|i| &i.key).collect();
            assert_eq!(keys, ["auth.conf"], "only the included file is mounted");
            for probe in [&c.readiness_probe, &c.liveness_probe] {
                let cmd = probe.as_ref().unwrap().exec.as_ref().unwrap();
                assert!(cmd.command.as_ref().unwrap()[2].contains("valkey-cli -p 6379 ping"));
            }
        }
    }

    #[test]
    fn objects_and_pods_are_labelled_as_valkey() {
        let children = built(spec(cluster(), json!({})));
        labelled(&children, "redis", "valkey");
        let s = sts(&children).spec;
        let pod_labels = s.template.metadata.unwrap().labels.unwrap();
        assert_eq!(pod_labels["app.kubernetes.io/name"], "valkey");
        let selector = s.selector.match_labels.unwrap();
        assert_eq!(selector, ctx_selector());
        assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
        let pdb: PodDisruptionBudget = typed(&children, "PodDisruptionBudget/social-redis");
        let pdb = pdb.spec.unwrap();
        assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(pdb.selector.unwrap().match_labels.unwrap(), selector);
    }

    #[test]
    fn volumes_are_deleted_only_under_the_delete_policy() {
        let cases = [
            (json!({}), "Retain"),
            (json!({"deletionPolicy": "Retain"}), "Retain"),
            (json!({"deletionPolicy": "Delete"}), "Delete"),
        ];
        for (extra, when_deleted) in cases {
            let redis =
                json!({"managed": {"storage": {"size": "5Gi", "storageClassName": "fast"}}});
            let s = sts(&built(spec(redis, extra.clone()))).spec;
            let policy = s.persistent_volume_claim_retention_policy.unwrap();
            assert_eq!(
                policy.when_deleted.as_deref(),
                Some(when_deleted),
                "{extra}"
            );
            assert_eq!(policy.when_scaled.as_deref(), Some("Retain"));
            let claim = &s.volume_claim_templates.unwrap()[0];
            assert_eq!(claim.metadata.name.as_deref(), Some("data"));
            let claim = claim.spec.as_ref().unwrap();
            assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
            assert_eq!(
                claim.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
                "5Gi"
            );
        }
    }

    #[test]
    fn the_network_policy_admits_clients_and_peers_only() {
        for (redis, peer_ports) in [
            (json!({"managed": {}}), vec![6379]),
            (cluster(), vec![6379, 16379]),
        ] {
            let children = built(spec(redis, json!({})));
            let np: NetworkPolicy = typed(&children, "NetworkPolicy/social-redis");
            let np = np.spec.unwrap();
            assert_eq!(
                np.pod_selector.unwrap().match_labels.unwrap(),
                ctx_selector()
            );
            assert_eq!(np.policy_types.unwrap(), ["Ingress", "Egress"]);
            let ingress = np.ingress.unwrap();
            assert_eq!(ingress.len(), 2);
            clients_may_connect(&ingress[0], &[6379]);
            let own = vec![(false, ctx_selector())];
            let tcp_ports: Vec<_> = peer_ports.iter().map(|p| ("TCP".to_string(), *p)).collect();
            assert_eq!(peers(&ingress[1].from), own);
            assert_eq!(port_numbers(&ingress[1].ports), tcp_ports);
            let egress = np.egress.unwrap();
            assert_eq!(egress.len(), 2);
            assert_eq!(peers(&egress[0].to), own);
            assert_eq!(port_numbers(&egress[0].ports), tcp_ports);
            is_dns(&egress[1]);
        }
    }

    #[test]
    fn pods_meet_the_restricted_pod_security_standard() {
        for redis in [json!({"managed": {}}), cluster()] {
            let children = built(spec(redis, json!({})));
            restricted(&children);
            let pod = pod(&children);
            let psc = pod.security_context.unwrap();
            assert_eq!(
                (psc.run_as_user, psc.run_as_group, psc.fs_group),
                (Some(999), Some(999), Some(999))
            );
            let mounts: Vec<_> = pod.containers[0]
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| m.mount_path.as_str())
                .collect();
            assert!(mounts.contains(&"/tmp") && mounts.contains(&"/data"));
            let spread = &pod.topology_spread_constraints.unwrap()[0];
            assert_eq!(
                (
                    spread.topology_key.as_str(),
                    spread.when_unsatisfiable.as_str()
                ),
                ("kubernetes.io/hostname", "ScheduleAnyway")
            );
        }
    }

    #[test]
    fn resources_come_from_the_spec_and_config_changes_roll_the_pods() {
        let redis = json!({"managed": {"resources": {"limits": {"memory": "1Gi"}}}});
        let children = built(spec(redis, json!({})));
        let pod = pod(&children);
        let limits = pod.containers[0].resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["memory"].0, "1Gi");
        let checksum = |redis: Value| {
            let s = sts(&built(spec(redis, json!({})))).spec;
            s.template.metadata.unwrap().annotations.unwrap()[CONFIG_CHECKSUM_ANNOTATION].clone()
        };
        assert_ne!(checksum(json!({"managed": {}})), checksum(cluster()));
    }
}
