//! The server's three roles as workloads: api, streamer and pools of workers.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the server image comes from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Image repository, for a mirror or private registry. The tag is `spec.version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub repository: Option<String>,
    /// `IfNotPresent` (default), `Always` or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Secrets in this namespace used to pull the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub pull_secrets: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    IfNotPresent,
    Always,
    Never,
}

/// A horizontally scaled role: how many pods, how big.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    /// Number of pods, when autoscaling is off. Unset: what `spec.size` says, else 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// CPU and memory requests and limits of each pod. Each one set here wins over the
    /// `spec.size` preset's; the others keep the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Scale on CPU between these bounds instead of a fixed `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
}

/// A preset of replicas and resources for the server's workloads; explicit fields win.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Size {
    /// One pod per role, small requests: a personal or small community server.
    Small,
    /// Two pods per role (no single point of failure), moderate requests.
    Medium,
    /// More pods and larger requests, for thousands of active users.
    Large,
}

/// Horizontal autoscaling on CPU utilisation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed maxReplicas"))]
pub struct AutoscalingSpec {
    /// Fewest pods.
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most pods.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilisation to aim for, in percent of requests.
    #[serde(default = "default_cpu_target")]
    #[schemars(range(min = 10, max = 100))]
    pub target_cpu_utilization: i32,
}

fn default_cpu_target() -> i32 {
    70
}

/// Worker autoscaling on the age of the oldest waiting job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed maxReplicas"))]
pub struct QueueAutoscalingSpec {
    /// Fewest pods.
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most pods.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// How long, in seconds, the oldest job of a queue may wait before pods are added.
    #[serde(default = "default_oldest_age")]
    #[schemars(range(min = 1, max = 86400))]
    pub target_oldest_age_seconds: i32,
}

fn default_oldest_age() -> i32 {
    30
}

/// Where the autoscalers read the server's metrics.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSettings {
    /// The Prometheus that scrapes the workers' `/metrics`, for KEDA's prometheus trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,
}

/// A Prometheus server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSource {
    /// Its HTTP address, such as `http://prometheus-operated.monitoring.svc:9090`.
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^https?://"))]
    pub server_address: String,
}

/// Background job processing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.pools.filter(p, p.scheduler).size() == 1").message("exactly one worker pool must have scheduler: true (it runs the periodic jobs)"))]
#[x_kube(validation = Rule::new("self.pools.all(p, self.pools.exists_one(q, q.name == p.name))").message("worker pool names must be unique"))]
pub struct WorkerSpec {
    /// Pools of worker pods. Each pool is a Deployment that takes jobs from its queues;
    /// give busy queues (such as `push`, federation delivery) their own pool to keep them
    /// from starving the others.
    #[serde(default = "default_pools")]
    #[schemars(length(min = 1, max = 16))]
    pub pools: Vec<WorkerPool>,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        Self {
            pools: default_pools(),
        }
    }
}

fn default_pools() -> Vec<WorkerPool> {
    vec![WorkerPool {
        name: "default".into(),
        queues: Queue::ALL
            .iter()
            .map(|q| QueueWeight {
                name: *q,
                weight: q.default_weight(),
            })
            .collect(),
        concurrency: default_concurrency(),
        replicas: None,
        resources: None,
        scheduler: true,
        autoscaling: None,
    }]
}

/// One pool of worker pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.queues.all(q, self.queues.exists_one(r, r.name == q.name))").message("a queue may appear only once in a pool"))]
pub struct WorkerPool {
    /// Name of the pool; the Deployment is `<instance>-worker-<name>`.
    #[schemars(
        length(min = 1, max = 20),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Queues this pool takes jobs from, with weights: a queue of weight 4 is polled four
    /// times as often as one of weight 1.
    #[schemars(length(min = 1, max = 6))]
    pub queues: Vec<QueueWeight>,
    /// Jobs each pod runs at once.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: i32,
    /// Number of pods. Unset: what `spec.size` says, else 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// CPU and memory requests and limits of each pod. Each one set here wins over the
    /// `spec.size` preset's; the others keep the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Whether this pool runs the periodic jobs (exactly one pool does).
    #[serde(default)]
    pub scheduler: bool,
    /// Autoscaling on queue latency: pods are added while the oldest job waiting in one of
    /// the pool's queues (`fedi_jobs_oldest_age_seconds`) is older than the target. Through
    /// a KEDA ScaledObject when KEDA is installed and `spec.autoscaling.prometheus` is set,
    /// otherwise an HPA on that External metric, which needs a metrics adapter serving it
    /// (such as prometheus-adapter). Replaces `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<QueueAutoscalingSpec>,
}

fn default_concurrency() -> i32 {
    10
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct QueueWeight {
    /// The queue.
    pub name: Queue,
    /// Relative polling weight.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
}

fn default_weight() -> i32 {
    1
}

/// Job queues, as Mastodon has them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Queue {
    /// Timeline fan-out and most local work.
    Default,
    /// Delivery of activities to other servers.
    Push,
    /// Processing of activities received from other servers.
    Ingress,
    /// E-mail.
    Mailers,
    /// Fetching remote objects.
    Pull,
    /// Periodic and scheduled jobs.
    Scheduler,
}

impl Queue {
    pub const ALL: &'static [Queue] = &[
        Queue::Default,
        Queue::Push,
        Queue::Ingress,
        Queue::Mailers,
        Queue::Pull,
        Queue::Scheduler,
    ];

    /// The queue's name, as in the manifest and in FEDI_WORKER_QUEUES.
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Default => "default",
            Queue::Push => "push",
            Queue::Ingress => "ingress",
            Queue::Mailers => "mailers",
            Queue::Pull => "pull",
            Queue::Scheduler => "scheduler",
        }
    }

    /// Mastodon's default Sidekiq weights: local work first, then federation, then the rest.
    pub fn default_weight(self) -> i32 {
        match self {
            Queue::Default => 8,
            Queue::Ingress => 6,
            Queue::Push => 4,
            Queue::Mailers | Queue::Pull => 2,
            Queue::Scheduler => 1,
        }
    }
}
