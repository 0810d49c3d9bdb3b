//! Whether the cluster serves every slot, from `CLUSTER INFO` on each reachable node.

use std::fmt;
use std::time::Duration;

use futures::future::join_all;

use super::ClusterError;
use super::client::{self, Timeouts};
use super::plan::SLOT_COUNT;

/// Short, so that a dead pod does not hold up the status of the whole instance.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    response: Duration::from_secs(2),
};

/// The fields of `CLUSTER INFO` the readiness rests on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterInfo {
    /// `cluster_state:ok`: this node serves queries.
    pub state_ok: bool,
    pub slots_assigned: usize,
    pub slots_ok: usize,
    pub slots_pfail: usize,
    pub slots_fail: usize,
    pub known_nodes: usize,
    /// Masters serving at least one slot.
    pub size: usize,
}

impl ClusterInfo {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut info = ClusterInfo::default();
        let mut state = None;
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once(':') else {
                continue;
            };
            let number = || {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("{key} is not a number: {value:?}"))
            };
            match key {
                "cluster_state" => state = Some(value == "ok"),
                "cluster_slots_assigned" => info.slots_assigned = number()?,
                "cluster_slots_ok" => info.slots_ok = number()?,
                "cluster_slots_pfail" => info.slots_pfail = number()?,
                "cluster_slots_fail" => info.slots_fail = number()?,
                "cluster_known_nodes" => info.known_nodes = number()?,
                "cluster_size" => info.size = number()?,
                _ => {}
            }
        }
        info.state_ok = state.ok_or("no cluster_state field")?;
        Ok(info)
    }

    /// A node that has met nobody and serves nothing is not part of the cluster yet.
    fn joined(&self) -> bool {
        self.known_nodes > 1 || self.slots_assigned > 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeState {
    Reachable(ClusterInfo),
    /// Why it could not be reached.
    Unreachable(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeHealth {
    pub node: String,
    pub state: NodeState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthReason {
    /// Every node is reachable, joined, and serves all slots.
    ClusterOk,
    /// All slots are served, but some nodes are unreachable or have not joined: clients work,
    /// with less redundancy.
    Degraded,
    /// The cluster is not bootstrapped, or a node does not see all slots assigned.
    SlotsUnassigned,
    /// A node reports `cluster_state:fail`, typically a master down before its failover.
    ClusterFail,
    /// No node could be reached.
    NodeUnreachable,
}

impl HealthReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthReason::ClusterOk => "ClusterOk",
            HealthReason::Degraded => "Degraded",
            HealthReason::SlotsUnassigned => "SlotsUnassigned",
            HealthReason::ClusterFail => "ClusterFail",
            HealthReason::NodeUnreachable => "NodeUnreachable",
        }
    }
}

impl fmt::Display for HealthReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `RedisReady` condition: `ready` with its `reason` and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub ready: bool,
    pub reason: HealthReason,
    pub message: String,
    pub nodes: Vec<NodeHealth>,
}

/// Reads `CLUSTER INFO` from every node that answers. Unreachable nodes are part of the
/// answer; errors are kept for what the caller must fix (addresses, the password) or a node
/// that is not in cluster mode.
pub async fn health(nodes: &[String], password: Option<&str>) -> Result<Health, ClusterError> {
    if nodes.is_empty() {
        return Err(ClusterError::NoNodes);
    }
    for node in nodes {
        client::split_address(node)?;
    }
    let states = join_all(nodes.iter().map(|addr| async move {
        let state = match client::connect(addr, password, TIMEOUTS).await {
            Err(ClusterError::NodeUnreachable { reason, .. }) => NodeState::Unreachable(reason),
            Err(e) => return Err(e),
            Ok(node) => {
                let text = node.cluster_info().await?;
                NodeState::Reachable(ClusterInfo::parse(&text).map_err(|detail| {
                    ClusterError::UnexpectedReply {
                        node: addr.clone(),
                        command: "CLUSTER INFO",
                        detail,
                    }
                })?)
            }
        };
        Ok(NodeHealth {
            node: addr.clone(),
            state,
        })
    }))
    .await;
    Ok(assess(states.into_iter().collect::<Result<_, _>>()?))
}

/// Readiness means clients are served: every reachable, joined node sees all slots assigned
/// and says `ok`. Missing nodes only degrade it.
pub(super) fn assess(nodes: Vec<NodeHealth>) -> Health {
    let mut unreachable = Vec::new();
    let mut not_joined = Vec::new();
    let mut joined = Vec::new();
    for n in &nodes {
        match &n.state {
            NodeState::Unreachable(reason) => unreachable.push(format!("{} ({reason})", n.node)),
            NodeState::Reachable(info) if !info.joined() => not_joined.push(n.node.clone()),
            NodeState::Reachable(info) => joined.push((n.node.as_str(), info)),
        }
    }
    let verdict = |ready, reason, message: String| Health {
        ready,
        reason,
        message,
        nodes: nodes.clone(),
    };
    let total = usize::from(SLOT_COUNT);
    if unreachable.len() == nodes.len() {
        return verdict(
            false,
            HealthReason::NodeUnreachable,
            format!("no Redis node is reachable: {}", unreachable.join(", ")),
        );
    }
    if joined.is_empty() {
        return verdict(
            false,
            HealthReason::SlotsUnassigned,
            "the Redis Cluster is not bootstrapped yet: no node serves any slot".to_owned(),
        );
    }
    if let Some((node, info)) = joined.iter().find(|(_, i)| i.slots_assigned < total) {
        return verdict(
            false,
            HealthReason::SlotsUnassigned,
            format!(
                "{node} sees {} of {total} slots assigned",
                info.slots_assigned
            ),
        );
    }
    if let Some((node, info)) = joined.iter().find(|(_, i)| !i.state_ok) {
        return verdict(
            false,
            HealthReason::ClusterFail,
            format!(
                "{node} reports cluster_state:fail ({} slots ok, {} possibly failing, {} failed)",
                info.slots_ok, info.slots_pfail, info.slots_fail
            ),
        );
    }
    let size = joined.iter().map(|(_, i)| i.size).max().unwrap_or(0);
    if unreachable.is_empty() && not_joined.is_empty() {
        return verdict(
            true,
            HealthReason::ClusterOk,
            format!(
                "{} nodes, {size} shards serving all {total} slots",
                nodes.len()
            ),
        );
    }
    let mut missing = Vec::new();
    if !unreachable.is_empty() {
        missing.push(format!("unreachable: {}", unreachable.join(", ")));
    }
    if !not_joined.is_empty() {
        missing.push(format!("not joined: {}", not_joined.join(", ")));
    }
    verdict(
        true,
        HealthReason::Degraded,
        format!(
            "{size} shards serve all {total} slots, but {}",
            missing.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n\
                      cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:6\r\n\
                      cluster_size:3\r\ncluster_current_epoch:6\r\n";

    fn info(state_ok: bool, slots_assigned: usize, known_nodes: usize) -> ClusterInfo {
        ClusterInfo {
            state_ok,
            slots_assigned,
            slots_ok: slots_assigned,
            known_nodes,
            size: if slots_assigned > 0 { 3 } else { 0 },
            ..ClusterInfo::default()
        }
    }

    fn up(node: &str, info: ClusterInfo) -> NodeHealth {
        NodeHealth {
            node: node.to_owned(),
            state: NodeState::Reachable(info),
        }
    }

    fn down(node: &str) -> NodeHealth {
        NodeHealth {
            node: node.to_owned(),
            state: NodeState::Unreachable("connection refused".to_owned()),
        }
    }

    #[test]
    fn parses_cluster_info() {
        assert_eq!(
            ClusterInfo::parse(OK).unwrap(),
            ClusterInfo {
                state_ok: true,
                slots_assigned: 16384,
                slots_ok: 16384,
                slots_pfail: 0,
                slots_fail: 0,
                known_nodes: 6,
                size: 3,
            }
        );
        let fail = ClusterInfo::parse("cluster_state:fail\ncluster_slots_assigned:0\n").unwrap();
        assert!(!fail.state_ok);
        assert!(ClusterInfo::parse("cluster_slots_ok:1\n").is_err());
        assert!(ClusterInfo::parse("cluster_state:ok\ncluster_size:x\n").is_err());
    }

    #[test]
    fn assesses_cluster_states() {
        let ok = || info(true, 16384, 6);
        let cases: Vec<(&str, Vec<NodeHealth>, bool, HealthReason, &str)> = vec![
            (
                "healthy",
                vec![up("a", ok()), up("b", ok())],
                true,
                HealthReason::ClusterOk,
                "all 16384",
            ),
            (
                "fresh nodes",
                vec![up("a", info(false, 0, 1)), up("b", info(false, 0, 1))],
                false,
                HealthReason::SlotsUnassigned,
                "not bootstrapped",
            ),
            (
                "met, no slots",
                vec![up("a", info(false, 0, 2)), up("b", info(false, 0, 2))],
                false,
                HealthReason::SlotsUnassigned,
                "a sees 0 of 16384",
            ),
            (
                "master down before failover",
                vec![up("a", ok()), up("b", info(false, 16384, 6)), down("c")],
                false,
                HealthReason::ClusterFail,
                "b reports cluster_state:fail",
            ),
            (
                "after failover",
                vec![up("a", ok()), up("b", ok()), down("c")],
                true,
                HealthReason::Degraded,
                "unreachable: c (connection refused)",
            ),
            (
                "new node not joined yet",
                vec![up("a", ok()), up("b", ok()), up("c", info(false, 0, 1))],
                true,
                HealthReason::Degraded,
                "not joined: c",
            ),
            (
                "all down",
                vec![down("a"), down("b")],
                false,
                HealthReason::NodeUnreachable,
                "no Redis node is reachable",
            ),
        ];
        for (name, nodes, ready, reason, message) in cases {
            let health = assess(nodes);
            assert_eq!(
                (health.ready, health.reason),
                (ready, reason),
                "{name}: {health:?}"
            );
            assert!(
                health.message.contains(message),
                "{name}: {}",
                health.message
            );
        }
    }
}
