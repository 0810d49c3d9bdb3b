//! Bootstraps, scales and checks a Redis Cluster through the `redis` crate.
//!
//! Nothing here knows Kubernetes: the caller passes the nodes' `host:port` addresses (the
//! StatefulSet's pod DNS names in production) in a stable order, and the wanted
//! [`Topology`]. [`reconcile`] is level-triggered and idempotent: it compares what the nodes
//! report with the topology, does only what is missing, and resumes whatever an interrupted
//! run left half done. [`health`] reads `CLUSTER INFO` for the `RedisReady` condition.
//!
//! - `nodes`: parsing of `CLUSTER NODES` (pure).
//! - `plan`: roles, slot split and rebalancing moves (pure).
//! - `reconcile`, `health`: the conversations with the nodes.

mod client;
mod health;
pub mod nodes;
pub mod plan;
mod reconcile;

pub use health::{ClusterInfo, Health, HealthReason, NodeHealth, NodeState, health};
pub use plan::Topology;
pub use reconcile::{Report, reconcile};

/// Every way [`reconcile`] or [`health`] can fail. Messages name the node and say what a
/// person can do; passwords never appear in them.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no Redis nodes given")]
    NoNodes,
    #[error("invalid Redis node address {node:?}: expected host:port")]
    InvalidAddress { node: String },
    #[error("invalid Redis Cluster topology: {0}")]
    InvalidTopology(String),
    #[error(
        "the Redis Cluster topology needs {needed} nodes ({shards} shards x (1 master + \
         {replicas_per_shard} replicas)) but only {available} are given"
    )]
    NotEnoughNodes {
        available: usize,
        needed: usize,
        shards: usize,
        replicas_per_shard: usize,
    },
    #[error("Redis node {node} is unreachable: {reason}")]
    NodeUnreachable { node: String, reason: String },
    #[error(
        "Redis node {node} refused the credentials ({reason}); check the password in the \
         instance's Redis Secret"
    )]
    AuthFailed { node: String, reason: String },
    #[error("Redis node {node} failed {command}: {source}")]
    Command {
        node: String,
        command: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis node {node} answered {command} with an unexpected reply: {detail}")]
    UnexpectedReply {
        node: String,
        command: &'static str,
        detail: String,
    },
    #[error(
        "the Redis Cluster has {current} shards holding slots and cannot shrink to {wanted}: \
         removing shards is not supported (their slots and keys would have to move first)"
    )]
    ShrinkNotSupported { current: usize, wanted: usize },
    /// A state that reconcile will not change on its own, because every way out risks data.
    #[error("refusing to change the Redis Cluster: {0}")]
    Refused(String),
    /// The nodes disagree for now (typically just after a failover); a later run will act.
    #[error("the Redis Cluster is still converging: {0}; retry shortly")]
    Converging(String),
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { seconds: u64, what: String },
}

impl ClusterError {
    /// The reason of the `RedisReady` condition and of the Warning event.
    pub fn reason(&self) -> &'static str {
        match self {
            ClusterError::NoNodes
            | ClusterError::InvalidAddress { .. }
            | ClusterError::InvalidTopology(_)
            | ClusterError::NotEnoughNodes { .. } => "RedisTopologyInvalid",
            ClusterError::NodeUnreachable { .. } => "NodeUnreachable",
            ClusterError::AuthFailed { .. } => "RedisAuthFailed",
            ClusterError::Command { .. } | ClusterError::UnexpectedReply { .. } => {
                "RedisCommandFailed"
            }
            ClusterError::ShrinkNotSupported { .. } => "ShrinkNotSupported",
            ClusterError::Refused(_) => "RedisClusterConflict",
            ClusterError::Converging(_) | ClusterError::Timeout { .. } => "RedisClusterConverging",
        }
    }

    /// Errors that retrying cannot fix: the spec or the cluster needs a person.
    pub fn needs_a_person(&self) -> bool {
        matches!(
            self,
            ClusterError::InvalidAddress { .. }
                | ClusterError::InvalidTopology(_)
                | ClusterError::ShrinkNotSupported { .. }
                | ClusterError::Refused(_)
                | ClusterError::AuthFailed { .. }
        )
    }
}
