//! The parts of a real cluster that the local control plane (kube-apiserver + kwok) lacks,
//! played by the test so that samples with managed services can reach Ready there.
//!
//! kwok marks pods Running and Ready, but nothing runs in them, and there is no cluster
//! DNS, no volume provisioner and no CloudNativePG controller. The operator, however, talks
//! to some managed services itself: it forms the Redis Cluster through the pods' DNS names
//! (`<pod>.<headless Service>.<ns>.svc`), pings a standalone Redis through its Service and
//! prepares the media bucket in the managed SeaweedFS through its Service. So the test plays:
//!
//! - the pods the operator talks to: the REAL programs (`redis-server`, SeaweedFS's
//!   `weed`), each on a loopback address of its own (`127.x.y.z`), started with the
//!   configuration and credentials the pod would mount (the operator's ConfigMap and
//!   generated Secrets), see `programs`;
//! - cluster DNS: a hosts file naming those addresses, bind-mounted over `/etc/hosts` of an
//!   operator process in a private mount namespace, see `dns`;
//! - the volume provisioner: a PersistentVolume for each pending claim, bound only once the
//!   played programs of its StatefulSet answer, so that a pod turns Ready when its program
//!   does (as its readiness probe would have it), see `volumes`;
//! - CloudNativePG's controller: a healthy Cluster status and the application Secret, as in
//!   `tests/cloudnative_pg.rs`, see `cloudnative_pg`.
//!
//! For many instances at once (the operator bench), [`PlayedCluster::start_sharing_redis`]
//! plays every standalone managed Redis with one shared server, see `shared_redis`.
//!
//! Only on the local control plane: on a real cluster (E2E_KUBECONFIG) the pods, DNS,
//! volumes and CloudNativePG are real and nothing here must stand in for them.

pub mod cloudnative_pg;
pub mod dns;
pub mod forward;
pub mod programs;
pub mod shared_redis;
pub mod volumes;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret, Service};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

pub use dns::HostsFile;
pub use programs::{Program, loopback};

/// Whether the cluster under test is the local control plane, whose nodes are all kwok's:
/// only there may the test play anything.
pub async fn is_local_control_plane(client: &Client) -> bool {
    if std::env::var_os("E2E_KUBECONFIG").is_some() {
        return false;
    }
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    !nodes.is_empty()
        && nodes
            .iter()
            .all(|n| n.annotations().get("kwok.x-k8s.io/node").is_some())
}

/// The components (`app.kubernetes.io/component`) whose pods run a played program (`step`).
const PLAYED_COMPONENTS: [&str; 2] = ["redis", "s3"];

/// A pod the test plays: the labels Services select it by, and where its program listens.
struct PlayedPod {
    namespace: String,
    labels: BTreeMap<String, String>,
    ip: Ipv4Addr,
}

#[derive(Default)]
struct State {
    programs: Vec<Program>,
    pods: Vec<PlayedPod>,
    /// StatefulSets (`namespace/name`) whose pods are played (or need no program): their
    /// claims may bind.
    ready_sets: BTreeSet<String>,
    started_sets: BTreeSet<String>,
    volumes: volumes::Volumes,
    /// Whether one server stands in for every standalone managed Redis...
    share_redis: bool,
    /// ...started with the first, on the port its pods declare.
    shared_redis: Option<shared_redis::SharedRedis>,
}

/// Plays the missing parts for some namespaces until dropped (then stops every program and
/// deletes the PersistentVolumes it made).
pub struct PlayedCluster {
    pub hosts: Arc<HostsFile>,
    pub dir: PathBuf,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl PlayedCluster {
    /// Starts playing for `namespaces`, with its files (hosts file, data, logs) under `dir`.
    pub fn start(client: &Client, namespaces: &[String], dir: &Path) -> Self {
        Self::start_with(client, namespaces, dir, false)
    }

    /// As [`PlayedCluster::start`], but every standalone managed Redis is the same
    /// `redis-server`, which accepts each instance's generated password (cluster mode is
    /// still one server per node).
    pub fn start_sharing_redis(client: &Client, namespaces: &[String], dir: &Path) -> Self {
        Self::start_with(client, namespaces, dir, true)
    }

    /// How many instance passwords the shared Redis accepts (0 when not sharing).
    pub fn shared_redis_passwords(&self) -> usize {
        let state = self.state.lock().unwrap();
        state.shared_redis.as_ref().map_or(0, |r| r.admitted())
    }

    fn start_with(client: &Client, namespaces: &[String], dir: &Path, share_redis: bool) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let hosts = Arc::new(HostsFile::create(dir.join("hosts")).expect("a hosts file"));
        let state = Arc::new(Mutex::new(State {
            share_redis,
            ..State::default()
        }));
        let task = tokio::spawn(run(
            client.clone(),
            namespaces.to_vec(),
            dir.to_path_buf(),
            hosts.clone(),
            state.clone(),
        ));
        Self {
            hosts,
            dir: dir.to_path_buf(),
            state,
            task,
        }
    }

    /// Keeps `program` running until the cluster is dropped.
    pub fn keep(&self, program: Program) {
        self.state.lock().unwrap().programs.push(program);
    }

    /// Addresses of the played pods of StatefulSet `name` in `ns`, by pod index.
    pub fn pod_ips(&self, ns: &str, name: &str) -> Vec<Ipv4Addr> {
        let state = self.state.lock().unwrap();
        let mut pods: Vec<(u32, Ipv4Addr)> = state
            .pods
            .iter()
            .filter(|p| p.namespace == ns)
            .filter_map(|p| {
                let pod = p.labels.get("statefulset.kubernetes.io/pod-name")?;
                let index = pod.strip_prefix(name)?.strip_prefix('-')?.parse().ok()?;
                Some((index, p.ip))
            })
            .collect();
        pods.sort();
        pods.into_iter().map(|(_, ip)| ip).collect()
    }
}

impl Drop for PlayedCluster {
    fn drop(&mut self) {
        self.task.abort();
        let mut state = std::mem::take(&mut *self.state.lock().unwrap());
        state.programs.clear();
        state.shared_redis = None;
        state.volumes.delete_all();
    }
}

async fn run(
    client: Client,
    namespaces: Vec<String>,
    dir: PathBuf,
    hosts: Arc<HostsFile>,
    state: Arc<Mutex<State>>,
) {
    loop {
        for ns in &namespaces {
            if let Err(e) = step(&client, ns, &dir.join(ns), &hosts, &state).await {
                eprintln!("played cluster ({ns}): {e:#}");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One pass: start the programs of new StatefulSets, bind the claims of those that answer,
/// play CloudNativePG, and name every Service that selects a played pod.
async fn step(
    client: &Client,
    ns: &str,
    dir: &Path,
    hosts: &HostsFile,
    state: &Mutex<State>,
) -> anyhow::Result<()> {
    let sets = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    for sts in &sets.items {
        let name = format!("{ns}/{}", sts.name_any());
        if state.lock().unwrap().started_sets.contains(&name) {
            continue;
        }
        let component = sts
            .labels()
            .get("app.kubernetes.io/component")
            .cloned()
            .unwrap_or_default();
        let started = match component.as_str() {
            "redis" => play_redis(client, ns, dir, hosts, state, sts).await?,
            "s3" => play_seaweedfs(client, ns, dir, hosts, state, sts).await?,
            // Nothing the operator talks to (OpenSearch: its pods' readiness is the signal).
            _ => true,
        };
        if started {
            state.lock().unwrap().started_sets.insert(name);
        }
    }
    // A pod is Ready once its program answers, as its readiness probe would have it.
    let waiting: Vec<String> = {
        let s = state.lock().unwrap();
        s.started_sets
            .difference(&s.ready_sets)
            .filter_map(|k| k.strip_prefix(&format!("{ns}/")).map(String::from))
            .collect()
    };
    for name in waiting {
        let ips = {
            let s = state.lock().unwrap();
            s.pods
                .iter()
                .filter(|p| p.namespace == ns)
                .filter(|p| {
                    p.labels
                        .get("statefulset.kubernetes.io/pod-name")
                        .is_some_and(|pod| pod.rsplit_once('-').is_some_and(|(s, _)| s == name))
                })
                .map(|p| p.ip)
                .collect::<Vec<_>>()
        };
        let sts = sets.items.iter().find(|s| s.name_any() == name);
        let http = sts.is_some_and(|s| {
            s.labels()
                .get("app.kubernetes.io/component")
                .map(String::as_str)
                == Some("s3")
        });
        let answering = match sts.and_then(first_container_port) {
            Some(port) if !ips.is_empty() => ips.iter().all(|ip| {
                if http {
                    programs::http_answers(*ip, port)
                } else {
                    programs::answers(*ip, port)
                }
            }),
            _ => true,
        };
        if answering {
            state
                .lock()
                .unwrap()
                .ready_sets
                .insert(format!("{ns}/{name}"));
        }
    }
    let ready: BTreeSet<String> = {
        let s = state.lock().unwrap();
        s.ready_sets
            .iter()
            .filter_map(|k| k.strip_prefix(&format!("{ns}/")).map(String::from))
            .collect()
    };
    let mut volumes = std::mem::take(&mut state.lock().unwrap().volumes);
    let bound = volumes.bind_pending(client, ns, &ready).await;
    state.lock().unwrap().volumes = volumes;
    bound?;
    cloudnative_pg::play(client, ns).await?;
    name_services(client, ns, hosts, state).await
}

/// The port the StatefulSet's first container declares first.
fn first_container_port(sts: &StatefulSet) -> Option<u16> {
    let c = sts.spec.template.spec.as_ref()?.containers.first()?;
    u16::try_from(c.ports.as_ref()?.first()?.container_port).ok()
}

/// The Secret or ConfigMap volumes of the StatefulSet's pods, by source name.
fn mounted(sts: &StatefulSet) -> (Vec<String>, Vec<String>) {
    let volumes = sts
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.volumes.clone())
        .unwrap_or_default();
    let secrets = volumes
        .iter()
        .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
        .collect();
    let config_maps = volumes
        .iter()
        .filter_map(|v| Some(v.config_map.as_ref()?.name.clone()))
        .collect();
    (secrets, config_maps)
}

/// `key` of the first mounted Secret or ConfigMap that has it; None until one exists.
async fn mounted_value(client: &Client, ns: &str, sts: &StatefulSet, key: &str) -> Option<String> {
    let (secrets, config_maps) = mounted(sts);
    for name in secrets {
        let s = Api::<Secret>::namespaced(client.clone(), ns)
            .get_opt(&name)
            .await
            .ok()??;
        if let Some(v) = s.data.and_then(|d| d.get(key).cloned()) {
            return Some(String::from_utf8_lossy(&v.0).into_owned());
        }
    }
    for name in config_maps {
        let c = Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get_opt(&name)
            .await
            .ok()??;
        if let Some(v) = c.data.and_then(|d| d.get(key).cloned()) {
            return Some(v);
        }
    }
    None
}

/// The labels of pod `index` of the StatefulSet, as its controller would set them.
fn pod_labels(sts: &StatefulSet, index: i32) -> BTreeMap<String, String> {
    let mut labels = sts
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(
        "statefulset.kubernetes.io/pod-name".into(),
        format!("{}-{index}", sts.name_any()),
    );
    labels
}

/// The pod's stable DNS name through the StatefulSet's governing Service.
fn pod_host(sts: &StatefulSet, ns: &str, index: i32) -> String {
    let service = sts.spec.service_name.clone().unwrap_or_default();
    format!("{}-{index}.{service}.{ns}.svc", sts.name_any())
}

/// Every node of a managed Redis, with the pod's own `redis.conf` (from the ConfigMap) and
/// `auth.conf` (from the generated Secret): the cluster nodes announce their DNS names as
/// the pods' start script makes them; standalone replicas follow pod 0.
async fn play_redis(
    client: &Client,
    ns: &str,
    dir: &Path,
    hosts: &HostsFile,
    state: &Mutex<State>,
    sts: &StatefulSet,
) -> anyhow::Result<bool> {
    let Some(conf) = mounted_value(client, ns, sts, "redis.conf").await else {
        return Ok(false);
    };
    let Some(auth) = mounted_value(client, ns, sts, "auth.conf").await else {
        return Ok(false);
    };
    let replicas = sts.spec.replicas.unwrap_or(1);
    let cluster = conf.lines().any(|l| l.trim() == "cluster-enabled yes");
    let port = first_container_port(sts).context("the Redis container declares no port")?;
    if !cluster && state.lock().unwrap().share_redis {
        let mut s = state.lock().unwrap();
        if s.shared_redis.is_none() {
            let shared_dir = dir.parent().unwrap_or(dir).join("shared-redis");
            s.shared_redis = Some(shared_redis::SharedRedis::start(&shared_dir, port)?);
        }
        if let Some(shared) = s.shared_redis.as_mut() {
            anyhow::ensure!(
                shared.port == port,
                "the shared Redis listens on {}, a managed Redis declares {port}",
                shared.port
            );
            let password = shared_redis::required_password(&auth)
                .context("the managed Redis' auth.conf sets no requirepass")?;
            shared.admit(password)?;
            let ip = shared.ip;
            // Every pod (primary and replicas) is the shared server: they would all answer.
            for index in 0..replicas {
                hosts.map(&pod_host(sts, ns, index), ip.into());
                s.pods.push(PlayedPod {
                    namespace: ns.to_string(),
                    labels: pod_labels(sts, index),
                    ip,
                });
            }
            return Ok(true);
        }
    }
    let mut primary = None;
    for index in 0..replicas {
        let ip = loopback();
        let host = pod_host(sts, ns, index);
        let pod_dir = dir.join(format!("{}-{index}", sts.name_any()));
        let extra = if cluster {
            vec!["--cluster-announce-hostname".to_string(), host.clone()]
        } else if let Some(primary) = primary {
            vec!["--replicaof".into(), format!("{primary}"), port.to_string()]
        } else {
            Vec::new()
        };
        let program = programs::redis_node(&pod_dir, ip, &conf, &auth, &extra)?;
        primary.get_or_insert(ip);
        hosts.map(&host, ip.into());
        let mut s = state.lock().unwrap();
        s.programs.push(program);
        s.pods.push(PlayedPod {
            namespace: ns.to_string(),
            labels: pod_labels(sts, index),
            ip,
        });
    }
    Ok(true)
}

/// The managed object store: SeaweedFS with the identities file the operator generated.
async fn play_seaweedfs(
    client: &Client,
    ns: &str,
    dir: &Path,
    hosts: &HostsFile,
    state: &Mutex<State>,
    sts: &StatefulSet,
) -> anyhow::Result<bool> {
    let Some(identities) = mounted_value(client, ns, sts, "s3.json").await else {
        return Ok(false);
    };
    let port = first_container_port(sts).context("the SeaweedFS container declares no port")?;
    let ip = loopback();
    let program = programs::seaweedfs(
        &dir.join(format!("{}-0", sts.name_any())),
        ip,
        port,
        &identities,
        None,
    )?;
    hosts.map(&pod_host(sts, ns, 0), ip.into());
    let mut s = state.lock().unwrap();
    s.programs.push(program);
    s.pods.push(PlayedPod {
        namespace: ns.to_string(),
        labels: pod_labels(sts, 0),
        ip,
    });
    Ok(true)
}

/// `<svc>.<ns>.svc` for every Service selecting a played pod, to that pod's address (one
/// endpoint is enough where kube-proxy would balance).
async fn name_services(
    client: &Client,
    ns: &str,
    hosts: &HostsFile,
    state: &Mutex<State>,
) -> anyhow::Result<()> {
    // Only the played components' Services (the operator labels a Service as the pods it
    // selects): at 1,000 instances the others are thousands of objects each pass.
    let played = ListParams::default().labels(&format!(
        "app.kubernetes.io/component in ({})",
        PLAYED_COMPONENTS.join(",")
    ));
    let services = Api::<Service>::namespaced(client.clone(), ns)
        .list(&played)
        .await?;
    let state = state.lock().unwrap();
    // Pods by label, so that a Service is matched against the few of its most selective one.
    let mut by_label: BTreeMap<(&str, &str), Vec<&PlayedPod>> = BTreeMap::new();
    for pod in state.pods.iter().filter(|p| p.namespace == ns) {
        for (k, v) in &pod.labels {
            by_label.entry((k, v)).or_default().push(pod);
        }
    }
    for svc in services {
        let Some(selector) = svc.spec.as_ref().and_then(|s| s.selector.clone()) else {
            continue;
        };
        // The candidates of its most selective label (none if a label matches no pod).
        let Some(candidates) = selector
            .iter()
            .map(|(k, v)| by_label.get(&(k.as_str(), v.as_str())))
            .min_by_key(|c| c.map_or(0, Vec::len))
        else {
            continue;
        };
        let mut pods: Vec<&PlayedPod> = candidates
            .into_iter()
            .flatten()
            .copied()
            .filter(|p| selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .collect();
        pods.sort_by_key(|p| p.labels.get("statefulset.kubernetes.io/pod-name").cloned());
        if let Some(pod) = pods.first() {
            let name = svc.name_any();
            hosts.map(&format!("{name}.{ns}.svc"), pod.ip.into());
            hosts.map(&format!("{name}.{ns}.svc.cluster.local"), pod.ip.into());
        }
    }
    Ok(())
}
