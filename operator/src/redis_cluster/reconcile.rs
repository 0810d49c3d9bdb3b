//! Brings the nodes to the wanted topology, one stage at a time, each stage doing only what
//! the nodes' own answers say is missing:
//!
//! connect -> check (refuse what would lose data) -> new masters -> meet -> assign slots ->
//! replicas -> finish interrupted migrations -> rebalance.
//!
//! Decisions rest on what each node says about itself (its `myself` line), which is current,
//! rather than on what other nodes have heard through gossip, which may lag.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use tracing::{debug, info};

use super::client::{self, Node, Timeouts};
use super::nodes::ClusterNode;
use super::plan::{self, RoleConflict, SLOT_COUNT, SlotRange, Topology};
use super::{ClusterError, ClusterInfo};

const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    response: Duration::from_secs(30),
};
/// How long gossip may take to spread new members and roles to every node.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// MIGRATE's own I/O timeout; below `TIMEOUTS.response` so the server gives up first.
const MIGRATE_TIMEOUT_MS: u64 = 10_000;
const KEYS_PER_MIGRATE: usize = 100;

/// What a [`reconcile`] changed, for events. Empty when the cluster already matched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Nodes introduced to the cluster with `CLUSTER MEET`.
    pub met: Vec<String>,
    /// Replicas turned into empty masters (`CLUSTER RESET SOFT`) to lead a new shard.
    pub new_masters: Vec<String>,
    /// Slots given to masters with `CLUSTER ADDSLOTSRANGE` (bootstrap).
    pub slots_assigned: usize,
    /// `(replica, master)` pairs set with `CLUSTER REPLICATE`.
    pub replicas_set: Vec<(String, String)>,
    /// Slots moved between masters, interrupted moves finished included.
    pub slots_migrated: usize,
    pub keys_migrated: usize,
}

impl Report {
    pub fn is_empty(&self) -> bool {
        *self == Report::default()
    }
}

/// Brings the Redis Cluster formed by `nodes` to `topology`, idempotently.
///
/// `nodes` are `host:port` addresses in a stable order: the first `topology.shards` lead the
/// shards, node `i` after them replicates shard `(i - shards) % shards`. Every node must be
/// reachable, or nothing is changed. Adding shards moves slots (and their keys) to the new
/// masters; removing shards is refused. Safe to cancel: every stage resumes where it stopped.
pub async fn reconcile(
    nodes: &[String],
    topology: Topology,
    password: Option<&str>,
) -> Result<Report, ClusterError> {
    if nodes.is_empty() {
        return Err(ClusterError::NoNodes);
    }
    for node in nodes {
        client::split_address(node)?;
    }
    topology.check(nodes.len())?;
    let nodes = try_join_all(nodes.iter().map(|n| client::connect(n, password, TIMEOUTS))).await?;
    let mut report = Report::default();

    let mut seen = observe(&nodes).await?;
    let masters = check(&nodes, &seen, topology)?;

    if make_new_masters(&nodes, &seen, &masters, &mut report).await? {
        seen = observe(&nodes).await?;
    }
    meet(&nodes, &seen, &mut report).await?;
    seen = wait_joined(&nodes, seen).await?;
    if assign_slots(&nodes, &seen, topology, &masters, &mut report).await? {
        seen = observe(&nodes).await?;
    }
    if set_replicas(&nodes, &seen, topology, &masters, &mut report).await? {
        seen = observe(&nodes).await?;
    }
    if finish_open_migrations(&nodes, &seen, &masters, password, &mut report).await? {
        seen = observe(&nodes).await?;
    }
    rebalance(&nodes, &seen, &masters, password, &mut report).await?;
    Ok(report)
}

/// `CLUSTER NODES` as each node answers it, by position.
struct Seen {
    views: Vec<Vec<ClusterNode>>,
}

impl Seen {
    /// The node's own line; `Node::cluster_nodes` guarantees there is exactly one.
    fn me(&self, position: usize) -> &ClusterNode {
        self.views[position]
            .iter()
            .find(|n| n.flags.myself)
            .expect("checked by cluster_nodes")
    }

    fn id(&self, position: usize) -> &str {
        &self.me(position).id
    }

    fn position_of(&self, id: &str) -> Option<usize> {
        (0..self.views.len()).find(|&p| self.id(p) == id)
    }

    /// The entry `viewer` has for `id`, once past the handshake.
    fn entry(&self, viewer: usize, id: &str) -> Option<&ClusterNode> {
        self.views[viewer]
            .iter()
            .find(|n| n.id == id && !n.flags.handshake && !n.flags.noaddr)
    }

    fn holds_slots(&self, position: usize) -> bool {
        !self.me(position).slots.is_empty()
    }
}

async fn observe(nodes: &[Node]) -> Result<Seen, ClusterError> {
    let views = try_join_all(nodes.iter().map(Node::cluster_nodes)).await?;
    Ok(Seen { views })
}

/// Refuses every state reconcile must not touch, before anything changes, and returns the
/// position of each shard's master.
fn check(nodes: &[Node], seen: &Seen, topology: Topology) -> Result<Vec<usize>, ClusterError> {
    for p in 0..nodes.len() {
        if let Some(q) = (0..p).find(|&q| seen.id(q) == seen.id(p)) {
            return Err(ClusterError::InvalidTopology(format!(
                "{} and {} are the same Redis node",
                nodes[q].addr, nodes[p].addr
            )));
        }
    }

    // Slot holders the caller did not list: a shard being removed, or a node replaced
    // without failover. Either way their slots hold data reconcile cannot reach.
    let ours: HashSet<&str> = (0..nodes.len()).map(|p| seen.id(p)).collect();
    let mut foreign: BTreeMap<&str, (&ClusterNode, &str)> = BTreeMap::new();
    for (viewer, view) in seen.views.iter().enumerate() {
        for n in view
            .iter()
            .filter(|n| !n.slots.is_empty() && !ours.contains(n.id.as_str()))
        {
            foreign.entry(&n.id).or_insert((n, &nodes[viewer].addr));
        }
    }
    let holders = (0..nodes.len()).filter(|&p| seen.holds_slots(p)).count() + foreign.len();
    if holders > topology.shards {
        return Err(ClusterError::ShrinkNotSupported {
            current: holders,
            wanted: topology.shards,
        });
    }
    if let Some((id, (n, viewer))) = foreign.first_key_value() {
        return Err(ClusterError::Refused(format!(
            "node {id} ({}{}) holds {} slots according to {viewer} but is not one of the given \
             nodes; if it failed and was replaced, its slots must be recovered by hand \
             (CLUSTER FORGET it, then assign its slots)",
            n.address(),
            if n.flags.fail { ", failed" } else { "" },
            n.slot_count()
        )));
    }

    let mut owners: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for p in 0..nodes.len() {
        for slot in seen.me(p).slots.iter().flat_map(SlotRange::slots) {
            owners.entry(slot).or_default().push(p);
        }
    }
    let open: HashSet<u16> = (0..nodes.len())
        .flat_map(|p| {
            let me = seen.me(p);
            me.migrating
                .iter()
                .chain(&me.importing)
                .map(|(slot, _)| *slot)
        })
        .collect();
    if let Some((slot, claimants)) = owners
        .iter()
        .find(|(slot, c)| c.len() > 1 && !open.contains(slot))
    {
        return Err(ClusterError::Converging(format!(
            "slot {slot} is claimed by both {} and {}",
            nodes[claimants[0]].addr, nodes[claimants[1]].addr
        )));
    }

    let holds: Vec<bool> = (0..nodes.len()).map(|p| seen.holds_slots(p)).collect();
    plan::shard_masters(topology, &holds).map_err(|conflict| match conflict {
        RoleConflict::Shrink { current, wanted } => {
            ClusterError::ShrinkNotSupported { current, wanted }
        }
        RoleConflict::SameShard {
            shard,
            first,
            second,
        } => ClusterError::Refused(format!(
            "{} and {} both hold slots but the topology puts them in shard {shard}, probably \
             because a replica was promoted before the topology changed; fail back first (CLUSTER \
             FAILOVER on the replica that should lead its shard again), then retry",
            nodes[first].addr, nodes[second].addr
        )),
    })
}

/// A new shard is led by its designated node; when that node is a replica (the topology
/// places shard masters first, so adding shards turns replicas into masters), it becomes an
/// empty master. Its data is a copy of its master's, which is reachable, so nothing is lost.
async fn make_new_masters(
    nodes: &[Node],
    seen: &Seen,
    masters: &[usize],
    report: &mut Report,
) -> Result<bool, ClusterError> {
    let mut changed = false;
    for &m in masters {
        let me = seen.me(m);
        if !me.flags.replica {
            continue;
        }
        let master_id = me.master_id.as_deref().unwrap_or("?");
        if seen.position_of(master_id).is_none() {
            return Err(ClusterError::Refused(format!(
                "{} must lead a new shard but replicates {master_id}, which is not one of the \
                 given nodes: resetting it could drop the only copy of that node's data",
                nodes[m].addr
            )));
        }
        info!(node = %nodes[m].addr, "turning a replica into an empty master for a new shard");
        nodes[m]
            .query::<String>(
                redis::cmd("CLUSTER").arg("RESET").arg("SOFT"),
                "CLUSTER RESET SOFT",
            )
            .await?;
        report.new_masters.push(nodes[m].addr.clone());
        changed = true;
    }
    Ok(changed)
}

/// Introduces every node to an anchor: the first node holding slots (the existing cluster),
/// or the first node for a new cluster.
async fn meet(nodes: &[Node], seen: &Seen, report: &mut Report) -> Result<(), ClusterError> {
    let anchor = (0..nodes.len()).find(|&p| seen.holds_slots(p)).unwrap_or(0);
    let anchor_id = seen.id(anchor);
    let anchor_bus = seen
        .me(anchor)
        .bus_port
        .unwrap_or_else(|| nodes[anchor].port.saturating_add(10000));
    for p in (0..nodes.len()).filter(|&p| p != anchor) {
        let knows_anchor = seen.entry(p, anchor_id).is_some();
        if knows_anchor && seen.entry(anchor, seen.id(p)).is_some() {
            continue;
        }
        if !knows_anchor && seen.holds_slots(p) {
            return Err(ClusterError::Refused(format!(
                "{} holds slots but does not know {}: it belongs to another Redis Cluster, and \
                 joining the two would mix their data",
                nodes[p].addr, nodes[anchor].addr
            )));
        }
        info!(node = %nodes[p].addr, anchor = %nodes[anchor].addr, "CLUSTER MEET");
        nodes[p]
            .query::<String>(
                redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg(nodes[anchor].ip.to_string())
                    .arg(nodes[anchor].port)
                    .arg(anchor_bus),
                "CLUSTER MEET",
            )
            .await?;
        report.met.push(nodes[p].addr.clone());
    }
    Ok(())
}

/// Waits until every node knows every other one and agrees on its role, which `CLUSTER
/// REPLICATE` and `SETSLOT` need.
async fn wait_joined(nodes: &[Node], mut seen: Seen) -> Result<Seen, ClusterError> {
    let deadline = Instant::now() + JOIN_TIMEOUT;
    loop {
        let Some(lag) = disagreement(nodes, &seen) else {
            return Ok(seen);
        };
        if Instant::now() >= deadline {
            return Err(ClusterError::Timeout {
                seconds: JOIN_TIMEOUT.as_secs(),
                what: format!("the Redis nodes to know each other ({lag})"),
            });
        }
        debug!(%lag, "waiting for the Redis nodes to know each other");
        tokio::time::sleep(POLL_INTERVAL).await;
        seen = observe(nodes).await?;
    }
}

fn disagreement(nodes: &[Node], seen: &Seen) -> Option<String> {
    for viewer in 0..nodes.len() {
        for p in (0..nodes.len()).filter(|&p| p != viewer) {
            let me = seen.me(p);
            match seen.entry(viewer, &me.id) {
                None => {
                    return Some(format!(
                        "{} does not know {} yet",
                        nodes[viewer].addr, nodes[p].addr
                    ));
                }
                Some(entry) if entry.flags.master != me.flags.master => {
                    return Some(format!(
                        "{} still sees {} as a {}",
                        nodes[viewer].addr,
                        nodes[p].addr,
                        if entry.flags.master {
                            "master"
                        } else {
                            "replica"
                        }
                    ));
                }
                Some(_) => {}
            }
        }
    }
    None
}

/// Gives every slot no node holds to the shard `plan::even_split` puts it in.
async fn assign_slots(
    nodes: &[Node],
    seen: &Seen,
    topology: Topology,
    masters: &[usize],
    report: &mut Report,
) -> Result<bool, ClusterError> {
    let assigned: Vec<SlotRange> = (0..nodes.len())
        .flat_map(|p| seen.me(p).slots.iter().copied())
        .collect();
    let mut changed = false;
    for (shard, ranges) in plan::unassigned_by_shard(topology.shards, &assigned)
        .into_iter()
        .enumerate()
        .filter(|(_, ranges)| !ranges.is_empty())
    {
        let master = &nodes[masters[shard]];
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("ADDSLOTSRANGE");
        for range in &ranges {
            cmd.arg(range.start).arg(range.end);
        }
        let count = plan::count(&ranges);
        info!(node = %master.addr, slots = count, "assigning slots");
        master
            .query::<String>(&cmd, "CLUSTER ADDSLOTSRANGE")
            .await?;
        report.slots_assigned += count;
        changed = true;
    }
    Ok(changed)
}

/// Points every other node of a shard at its master. Only empty nodes are moved: a master
/// with keys is refused by Redis, and reconcile will not flush it.
async fn set_replicas(
    nodes: &[Node],
    seen: &Seen,
    topology: Topology,
    masters: &[usize],
    report: &mut Report,
) -> Result<bool, ClusterError> {
    let mut changed = false;
    for p in (0..nodes.len()).filter(|p| !masters.contains(p)) {
        let master = masters[topology.shard_of(p)];
        let master_id = seen.id(master);
        let me = seen.me(p);
        if me.flags.replica && me.master_id.as_deref() == Some(master_id) {
            continue;
        }
        if me.flags.master {
            let keys: u64 = nodes[p].query(&redis::cmd("DBSIZE"), "DBSIZE").await?;
            if keys > 0 {
                return Err(ClusterError::Refused(format!(
                    "{} must become a replica of {} but holds {keys} keys outside any slot it \
                     serves; flush it by hand (FLUSHALL) if they are not needed",
                    nodes[p].addr, nodes[master].addr
                )));
            }
        }
        info!(replica = %nodes[p].addr, master = %nodes[master].addr, "CLUSTER REPLICATE");
        nodes[p]
            .query::<String>(
                redis::cmd("CLUSTER").arg("REPLICATE").arg(master_id),
                "CLUSTER REPLICATE",
            )
            .await?;
        report
            .replicas_set
            .push((nodes[p].addr.clone(), nodes[master].addr.clone()));
        changed = true;
    }
    Ok(changed)
}

/// Finishes the slot moves an earlier run left open (`[slot->-id]` on the source, `[slot-<-id]`
/// on the target), towards the target they were going to.
async fn finish_open_migrations(
    nodes: &[Node],
    seen: &Seen,
    masters: &[usize],
    password: Option<&str>,
    report: &mut Report,
) -> Result<bool, ClusterError> {
    let position = |id: &str, slot: u16, holder: usize| {
        seen.position_of(id).ok_or_else(|| {
            ClusterError::Refused(format!(
                "slot {slot} on {} is being moved to or from node {id}, which is not one of the \
                 given nodes; finish or cancel it by hand (CLUSTER SETSLOT {slot} STABLE)",
                nodes[holder].addr
            ))
        })
    };
    let mut targets: BTreeMap<u16, usize> = BTreeMap::new();
    for p in 0..nodes.len() {
        for (slot, target) in &seen.me(p).migrating {
            let mut target = position(target, *slot, p)?;
            let target_me = seen.me(target);
            if let Some(master) = target_me
                .master_id
                .as_deref()
                .filter(|_| target_me.flags.replica)
            {
                // The target failed over mid-move: its promoted replica has the keys it took.
                target = position(master, *slot, p)?;
            }
            if targets.insert(*slot, target).is_some_and(|t| t != target) {
                return Err(ClusterError::Refused(format!(
                    "slot {slot} is migrating to two nodes; fix it by hand (redis-cli --cluster fix)"
                )));
            }
        }
    }
    for p in 0..nodes.len() {
        for (slot, source) in &seen.me(p).importing {
            position(source, *slot, p)?;
            if *targets.entry(*slot).or_insert(p) != p {
                return Err(ClusterError::Refused(format!(
                    "slot {slot} is migrating to {} but {} imports it; fix it by hand \
                     (redis-cli --cluster fix)",
                    nodes[targets[slot]].addr, nodes[p].addr
                )));
            }
        }
    }
    if !targets.is_empty() {
        wait_serving(nodes, masters).await?;
    }
    for (&slot, &target) in &targets {
        let owners: Vec<usize> = (0..nodes.len())
            .filter(|&p| p != target && seen.me(p).holds(slot))
            .collect();
        if owners.len() > 1 {
            return Err(ClusterError::Converging(format!(
                "slot {slot} is claimed by both {} and {}",
                nodes[owners[0]].addr, nodes[owners[1]].addr
            )));
        }
        let Some(source) = owners.first().copied().or_else(|| {
            // Only the target holds it: the keys have moved, the last SETSLOT may not have.
            (0..nodes.len())
                .find(|&p| p != target && seen.me(p).migrating.iter().any(|m| m.0 == slot))
        }) else {
            // Imported from nobody who still has it: just close the import.
            let id = seen.id(target).to_owned();
            nodes[target]
                .query::<String>(
                    redis::cmd("CLUSTER")
                        .arg("SETSLOT")
                        .arg(slot)
                        .arg("NODE")
                        .arg(&id),
                    "CLUSTER SETSLOT NODE",
                )
                .await?;
            report.slots_migrated += 1;
            continue;
        };
        let source_me = seen.me(source);
        let target_me = seen.me(target);
        let source_id = source_me.id.as_str();
        info!(slot, source = %nodes[source].addr, target = %nodes[target].addr,
            "finishing an interrupted slot migration");
        let keys = migrate_slot(
            SlotMove {
                slot,
                source: &nodes[source],
                source_id,
                target: &nodes[target],
                target_id: &target_me.id,
                source_owns: !owners.is_empty(),
                source_migrating: source_me.migrating.iter().any(|m| m.0 == slot),
                target_owns: target_me.holds(slot),
                target_importing: target_me
                    .importing
                    .iter()
                    .any(|(s, from)| *s == slot && from == source_id),
            },
            &others(nodes, masters, source, target),
            password,
        )
        .await?;
        report.slots_migrated += 1;
        report.keys_migrated += keys;
    }
    Ok(!targets.is_empty())
}

/// Waits until every shard master reports `cluster_state:ok`: until then Redis refuses
/// MIGRATE, and the RESTORE behind it, with CLUSTERDOWN. A master that just joined (a reset
/// replica leading a new shard) first waits out a rejoin delay of up to 5 s.
async fn wait_serving(nodes: &[Node], masters: &[usize]) -> Result<(), ClusterError> {
    let deadline = Instant::now() + JOIN_TIMEOUT;
    loop {
        let mut failing = None;
        for &m in masters {
            let text = nodes[m].cluster_info().await?;
            let info =
                ClusterInfo::parse(&text).map_err(|detail| ClusterError::UnexpectedReply {
                    node: nodes[m].addr.clone(),
                    command: "CLUSTER INFO",
                    detail,
                })?;
            if !info.state_ok {
                failing = Some(m);
                break;
            }
        }
        let Some(m) = failing else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(ClusterError::Timeout {
                seconds: JOIN_TIMEOUT.as_secs(),
                what: format!(
                    "{} to report cluster_state:ok before slots can move",
                    nodes[m].addr
                ),
            });
        }
        debug!(node = %nodes[m].addr, "waiting for cluster_state:ok before moving slots");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn others<'a>(nodes: &'a [Node], masters: &[usize], source: usize, target: usize) -> Vec<&'a Node> {
    masters
        .iter()
        .filter(|&&m| m != source && m != target)
        .map(|&m| &nodes[m])
        .collect()
}

/// Moves slots until every master is within one slot of the others. Moves from different
/// masters run concurrently; each master gives its slots one at a time.
async fn rebalance(
    nodes: &[Node],
    seen: &Seen,
    masters: &[usize],
    password: Option<&str>,
    report: &mut Report,
) -> Result<(), ClusterError> {
    let owned: Vec<Vec<SlotRange>> = masters.iter().map(|&m| seen.me(m).slots.clone()).collect();
    let total: usize = owned.iter().map(|o| plan::count(o)).sum();
    if total != usize::from(SLOT_COUNT) {
        return Err(ClusterError::Converging(format!(
            "the shard masters hold {total} of {SLOT_COUNT} slots"
        )));
    }
    let moves = plan::rebalance(&owned);
    if moves.is_empty() {
        return Ok(());
    }
    wait_serving(nodes, masters).await?;
    let mut by_source: BTreeMap<usize, Vec<plan::Move>> = BTreeMap::new();
    for m in moves {
        by_source.entry(m.from).or_default().push(m);
    }
    let results = try_join_all(by_source.into_iter().map(|(from, moves)| async move {
        let source = masters[from];
        let mut keys = 0;
        for m in &moves {
            let target = masters[m.to];
            keys += migrate_slot(
                SlotMove {
                    slot: m.slot,
                    source: &nodes[source],
                    source_id: seen.id(source),
                    target: &nodes[target],
                    target_id: seen.id(target),
                    source_owns: true,
                    source_migrating: false,
                    target_owns: false,
                    target_importing: false,
                },
                &others(nodes, masters, source, target),
                password,
            )
            .await?;
        }
        info!(source = %nodes[source].addr, slots = moves.len(), keys, "moved slots");
        Ok::<_, ClusterError>((moves.len(), keys))
    }))
    .await?;
    for (slots, keys) in results {
        report.slots_migrated += slots;
        report.keys_migrated += keys;
    }
    Ok(())
}

/// One slot on its way from `source` to `target`, and how far it got.
struct SlotMove<'a> {
    slot: u16,
    source: &'a Node,
    source_id: &'a str,
    target: &'a Node,
    target_id: &'a str,
    source_owns: bool,
    source_migrating: bool,
    target_owns: bool,
    target_importing: bool,
}

/// The documented protocol (IMPORTING on the target, MIGRATING on the source, MIGRATE every
/// key, then NODE everywhere), skipping the steps already done. Returns the keys moved.
async fn migrate_slot(
    mv: SlotMove<'_>,
    others: &[&Node],
    password: Option<&str>,
) -> Result<usize, ClusterError> {
    let slot = mv.slot;
    let setslot = |state: &str, id: &str| {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
        cmd
    };
    if !mv.target_owns && !mv.target_importing {
        mv.target
            .query::<String>(
                &setslot("IMPORTING", mv.source_id),
                "CLUSTER SETSLOT IMPORTING",
            )
            .await?;
    }
    let mut moved = 0;
    if mv.source_owns {
        if !mv.source_migrating {
            mv.source
                .query::<String>(
                    &setslot("MIGRATING", mv.target_id),
                    "CLUSTER SETSLOT MIGRATING",
                )
                .await?;
        }
        moved = migrate_keys(&mv, password).await?;
    }
    // The target first: once it owns the slot, a failure below leaves the source redirecting
    // clients to it, and the next run finishes.
    let node = setslot("NODE", mv.target_id);
    mv.target
        .query::<String>(&node, "CLUSTER SETSLOT NODE")
        .await?;
    mv.source
        .query::<String>(&node, "CLUSTER SETSLOT NODE")
        .await?;
    try_join_all(
        others
            .iter()
            .map(|other| other.query::<String>(&node, "CLUSTER SETSLOT NODE")),
    )
    .await?;
    debug!(slot, keys = moved, target = %mv.target.addr, "slot moved");
    Ok(moved)
}

async fn migrate_keys(mv: &SlotMove<'_>, password: Option<&str>) -> Result<usize, ClusterError> {
    let mut moved = 0;
    loop {
        let keys: Vec<Vec<u8>> = mv
            .source
            .query(
                redis::cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(mv.slot)
                    .arg(KEYS_PER_MIGRATE),
                "CLUSTER GETKEYSINSLOT",
            )
            .await?;
        if keys.is_empty() {
            return Ok(moved);
        }
        let mut cmd = redis::cmd("MIGRATE");
        cmd.arg(mv.target.ip.to_string())
            .arg(mv.target.port)
            .arg("")
            .arg(0)
            .arg(MIGRATE_TIMEOUT_MS)
            .arg("REPLACE");
        if let Some(password) = password {
            // AUTH <password> authenticates as the default user, as `requirepass` sets it.
            cmd.arg("AUTH").arg(password);
        }
        cmd.arg("KEYS");
        for key in &keys {
            cmd.arg(key.as_slice());
        }
        // "OK", or "NOKEY" when every key expired meanwhile.
        mv.source.query::<String>(&cmd, "MIGRATE").await?;
        moved += keys.len();
    }
}
