//! Pure slot and role planning: which node leads which shard, how the 16384 hash slots are
//! split, and which slots move where when shards are added. No I/O, so every rule is a table
//! test.

use std::cmp::Reverse;

use super::ClusterError;

/// Hash slots in a Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// An inclusive range of hash slots, as `CLUSTER NODES` prints and `ADDSLOTSRANGE` takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
}

impl SlotRange {
    pub fn new(start: u16, end: u16) -> Self {
        Self { start, end }
    }

    pub fn size(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    pub fn slots(&self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }
}

/// The number of slots in `ranges`.
pub fn count(ranges: &[SlotRange]) -> usize {
    ranges.iter().map(SlotRange::size).sum()
}

/// Compresses slots given in ascending order into ranges.
pub fn to_ranges(slots: impl IntoIterator<Item = u16>) -> Vec<SlotRange> {
    let mut ranges: Vec<SlotRange> = Vec::new();
    for slot in slots {
        match ranges.last_mut() {
            Some(last) if last.end.checked_add(1) == Some(slot) => last.end = slot,
            _ => ranges.push(SlotRange::new(slot, slot)),
        }
    }
    ranges
}

/// The wanted shape of the cluster.
///
/// Nodes are taken in the order given: the first `shards` nodes lead the shards, every later
/// node `i` replicates shard `(i - shards) % shards`. Nodes beyond `nodes_needed()` become
/// extra replicas by the same rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    pub shards: usize,
    pub replicas_per_shard: usize,
}

impl Topology {
    pub fn nodes_needed(&self) -> usize {
        self.shards * (1 + self.replicas_per_shard)
    }

    /// The shard the node at `position` belongs to.
    pub fn shard_of(&self, position: usize) -> usize {
        if position < self.shards {
            position
        } else {
            (position - self.shards) % self.shards
        }
    }

    /// Refuses topologies that cannot be built from `available` nodes.
    pub fn check(&self, available: usize) -> Result<(), ClusterError> {
        if self.shards == 0 || self.shards > usize::from(SLOT_COUNT) {
            return Err(ClusterError::InvalidTopology(format!(
                "shards must be between 1 and {SLOT_COUNT}, got {}",
                self.shards
            )));
        }
        if available < self.nodes_needed() {
            return Err(ClusterError::NotEnoughNodes {
                available,
                needed: self.nodes_needed(),
                shards: self.shards,
                replicas_per_shard: self.replicas_per_shard,
            });
        }
        Ok(())
    }
}

/// Contiguous, even ranges for `shards` shards; the first `16384 % shards` get one slot more.
pub fn even_split(shards: usize) -> Vec<SlotRange> {
    let total = usize::from(SLOT_COUNT);
    let (base, extra) = (total / shards, total % shards);
    let mut start = 0usize;
    (0..shards)
        .map(|shard| {
            let len = base + usize::from(shard < extra);
            let range = SlotRange::new(start as u16, (start + len - 1) as u16);
            start += len;
            range
        })
        .collect()
}

/// Why the current slot holders cannot be mapped onto the wanted shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleConflict {
    /// More nodes hold slots than there are shards.
    Shrink { current: usize, wanted: usize },
    /// Two slot holders fall into the same shard.
    SameShard {
        shard: usize,
        first: usize,
        second: usize,
    },
}

/// The position of each shard's master, given which positions hold slots now.
///
/// A shard is led by the one member that holds slots: after a failover that is the promoted
/// replica, and reconcile leaves it in charge rather than failing back. A shard whose members
/// hold no slots (a new shard, or a new cluster) is led by its designated node, `position ==
/// shard`.
pub fn shard_masters(topology: Topology, holds_slots: &[bool]) -> Result<Vec<usize>, RoleConflict> {
    let holders = holds_slots.iter().filter(|&&h| h).count();
    if holders > topology.shards {
        return Err(RoleConflict::Shrink {
            current: holders,
            wanted: topology.shards,
        });
    }
    let mut masters: Vec<Option<usize>> = vec![None; topology.shards];
    for (position, _) in holds_slots.iter().enumerate().filter(|(_, h)| **h) {
        let shard = topology.shard_of(position);
        if let Some(first) = masters[shard] {
            return Err(RoleConflict::SameShard {
                shard,
                first,
                second: position,
            });
        }
        masters[shard] = Some(position);
    }
    Ok(masters
        .into_iter()
        .enumerate()
        .map(|(shard, master)| master.unwrap_or(shard))
        .collect())
}

/// For each shard, the slots of its `even_split` range that no node holds. Completing a
/// bootstrap this way gives the same layout whether or not an earlier attempt was cut short.
pub fn unassigned_by_shard(shards: usize, assigned: &[SlotRange]) -> Vec<Vec<SlotRange>> {
    let mut taken = vec![false; usize::from(SLOT_COUNT)];
    for slot in assigned.iter().flat_map(SlotRange::slots) {
        taken[usize::from(slot)] = true;
    }
    even_split(shards)
        .into_iter()
        .map(|range| to_ranges(range.slots().filter(|&s| !taken[usize::from(s)])))
        .collect()
}

/// One slot to migrate, between indexes of the `owned` list given to [`rebalance`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub slot: u16,
    pub from: usize,
    pub to: usize,
}

/// The moves that leave every master within one slot of the others, moving as few slots as
/// possible: the masters that hold the most keep the odd extra slots, donors give their
/// highest slots, receivers fill up in order so that what they receive stays contiguous.
pub fn rebalance(owned: &[Vec<SlotRange>]) -> Vec<Move> {
    let counts: Vec<usize> = owned.iter().map(|r| count(r)).collect();
    let n = counts.len();
    if n == 0 {
        return Vec::new();
    }
    let total: usize = counts.iter().sum();
    let (base, extra) = (total / n, total % n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (Reverse(counts[i]), i));
    let mut target = vec![base; n];
    for &i in order.iter().take(extra) {
        target[i] += 1;
    }

    let mut receivers = (0..n)
        .filter(|&i| counts[i] < target[i])
        .flat_map(|i| std::iter::repeat_n(i, target[i] - counts[i]));
    let mut moves = Vec::new();
    for (from, ranges) in owned.iter().enumerate() {
        let surplus = counts[from].saturating_sub(target[from]);
        let slots: Vec<u16> = ranges.iter().flat_map(SlotRange::slots).collect();
        let mut given = slots[slots.len() - surplus..].to_vec();
        given.sort_unstable();
        for slot in given {
            let to = receivers.next().expect("surplus equals deficit");
            moves.push(Move { slot, from, to });
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u16, end: u16) -> SlotRange {
        SlotRange::new(start, end)
    }

    #[test]
    fn even_split_covers_every_slot_once() {
        for (shards, want) in [
            (1, vec![r(0, 16383)]),
            (2, vec![r(0, 8191), r(8192, 16383)]),
            (3, vec![r(0, 5461), r(5462, 10922), r(10923, 16383)]),
            (
                4,
                vec![r(0, 4095), r(4096, 8191), r(8192, 12287), r(12288, 16383)],
            ),
        ] {
            assert_eq!(even_split(shards), want, "{shards} shards");
        }
        let ranges = even_split(7);
        assert_eq!(count(&ranges), 16384);
        assert!(ranges.windows(2).all(|w| w[0].end + 1 == w[1].start));
    }

    #[test]
    fn to_ranges_compresses_runs() {
        assert_eq!(to_ranges([]), vec![]);
        assert_eq!(to_ranges([5]), vec![r(5, 5)]);
        assert_eq!(
            to_ranges([1, 2, 3, 7, 9, 10]),
            vec![r(1, 3), r(7, 7), r(9, 10)]
        );
        assert_eq!(to_ranges([16382, 16383]), vec![r(16382, 16383)]);
    }

    #[test]
    fn shard_of_assigns_replicas_round_robin() {
        let t = Topology {
            shards: 3,
            replicas_per_shard: 2,
        };
        let shards: Vec<usize> = (0..10).map(|p| t.shard_of(p)).collect();
        assert_eq!(shards, vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(t.nodes_needed(), 9);
    }

    #[test]
    fn check_refuses_impossible_topologies() {
        let t = |shards, replicas_per_shard| Topology {
            shards,
            replicas_per_shard,
        };
        assert!(t(3, 1).check(6).is_ok());
        assert!(t(3, 1).check(7).is_ok());
        assert!(matches!(
            t(3, 1).check(5),
            Err(ClusterError::NotEnoughNodes {
                available: 5,
                needed: 6,
                ..
            })
        ));
        assert!(matches!(
            t(0, 1).check(6),
            Err(ClusterError::InvalidTopology(_))
        ));
        assert!(matches!(
            t(16385, 0).check(20000),
            Err(ClusterError::InvalidTopology(_))
        ));
    }

    #[test]
    fn shard_masters_follow_the_slots() {
        let t3 = Topology {
            shards: 3,
            replicas_per_shard: 1,
        };
        let t4 = Topology {
            shards: 4,
            replicas_per_shard: 1,
        };
        let f = false;
        let cases: Vec<(&str, Topology, Vec<bool>, Vec<usize>)> = vec![
            ("new cluster", t3, vec![f; 6], vec![0, 1, 2]),
            (
                "bootstrapped",
                t3,
                vec![true, true, true, f, f, f],
                vec![0, 1, 2],
            ),
            // Node 3 was promoted when node 0 failed: it keeps shard 0.
            (
                "after failover",
                t3,
                vec![f, true, true, true, f, f],
                vec![3, 1, 2],
            ),
            (
                "new shard",
                t4,
                vec![true, true, true, f, f, f, f, f],
                vec![0, 1, 2, 3],
            ),
            // Node 3 leads shard 0 after a failover and is the designated master of the new
            // shard 3: it keeps its slots there, and node 0 leads shard 0 again.
            (
                "new shard after failover",
                t4,
                vec![f, true, true, true, f, f, f, f],
                vec![0, 1, 2, 3],
            ),
        ];
        for (name, topology, holds, want) in cases {
            assert_eq!(shard_masters(topology, &holds).unwrap(), want, "{name}");
        }
    }

    #[test]
    fn shard_masters_refuse_shrinking_and_conflicts() {
        let t2 = Topology {
            shards: 2,
            replicas_per_shard: 1,
        };
        assert_eq!(
            shard_masters(t2, &[true, true, true, false]),
            Err(RoleConflict::Shrink {
                current: 3,
                wanted: 2
            })
        );
        // Nodes 0 and 2 are both in shard 0.
        assert_eq!(
            shard_masters(t2, &[true, false, true, false]),
            Err(RoleConflict::SameShard {
                shard: 0,
                first: 0,
                second: 2
            })
        );
    }

    #[test]
    fn unassigned_by_shard_completes_a_partial_bootstrap() {
        assert_eq!(
            unassigned_by_shard(3, &[]),
            vec![
                vec![r(0, 5461)],
                vec![r(5462, 10922)],
                vec![r(10923, 16383)]
            ]
        );
        assert_eq!(
            unassigned_by_shard(3, &[r(0, 5461), r(6000, 6001)]),
            vec![
                vec![],
                vec![r(5462, 5999), r(6002, 10922)],
                vec![r(10923, 16383)]
            ]
        );
        assert_eq!(unassigned_by_shard(2, &[r(0, 16383)]), vec![vec![], vec![]]);
    }

    fn counts_after(owned: &[Vec<SlotRange>], moves: &[Move]) -> Vec<usize> {
        let mut counts: Vec<usize> = owned.iter().map(|o| count(o)).collect();
        for m in moves {
            counts[m.from] -= 1;
            counts[m.to] += 1;
        }
        counts
    }

    #[test]
    fn rebalance_three_to_four_moves_a_quarter() {
        let mut owned: Vec<Vec<SlotRange>> = even_split(3).into_iter().map(|r| vec![r]).collect();
        owned.push(vec![]);
        let moves = rebalance(&owned);
        assert_eq!(moves.len(), 4096);
        assert!(moves.iter().all(|m| m.to == 3));
        assert_eq!(counts_after(&owned, &moves), vec![4096; 4]);
        // Donors give their highest slots, so what they keep stays one range.
        assert_eq!(
            moves[0],
            Move {
                slot: 4096,
                from: 0,
                to: 3
            }
        );
        assert!(
            moves
                .iter()
                .all(|m| owned[m.from][0].end >= m.slot && m.slot > owned[m.from][0].end - 1366)
        );
    }

    #[test]
    fn rebalance_spreads_to_several_new_masters() {
        let mut owned: Vec<Vec<SlotRange>> = even_split(2).into_iter().map(|r| vec![r]).collect();
        owned.extend([vec![], vec![], vec![]]);
        let moves = rebalance(&owned);
        let counts = counts_after(&owned, &moves);
        assert_eq!(counts.iter().sum::<usize>(), 16384);
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
            "{counts:?}"
        );
        assert_eq!(moves.len(), 16384 - 2 * 3277);
        let slots: std::collections::HashSet<u16> = moves.iter().map(|m| m.slot).collect();
        assert_eq!(slots.len(), moves.len(), "a slot moves at most once");
    }

    #[test]
    fn rebalance_of_an_even_cluster_moves_nothing() {
        for shards in [1, 3, 4, 7] {
            let owned: Vec<Vec<SlotRange>> =
                even_split(shards).into_iter().map(|r| vec![r]).collect();
            assert_eq!(rebalance(&owned), vec![], "{shards} shards");
        }
        // Within one slot already, whoever holds the extra slots.
        let owned = vec![
            vec![r(0, 5460)],
            vec![r(5461, 10921)],
            vec![r(10922, 16383)],
        ];
        assert_eq!(rebalance(&owned), vec![]);
    }

    #[test]
    fn rebalance_evens_out_a_stray_slot() {
        // Slot 0 went from shard 0 to shard 1 (an interrupted migration finished elsewhere).
        let owned = vec![
            vec![r(1, 5461)],
            vec![r(0, 0), r(5462, 10922)],
            vec![r(10923, 16383)],
        ];
        let moves = rebalance(&owned);
        assert_eq!(moves, vec![], "5461/5462/5461 is already even");
        let owned = vec![
            vec![r(2, 5461)],
            vec![r(0, 1), r(5462, 10922)],
            vec![r(10923, 16383)],
        ];
        let moves = rebalance(&owned);
        assert_eq!(
            moves,
            vec![Move {
                slot: 10922,
                from: 1,
                to: 0
            }]
        );
    }
}
