//! Subscriptions on a Redis Cluster, by slot. With sharded pub/sub (Redis / Valkey 7.0+) a
//! channel lives on the shard that owns its key slot, so an `SPUBLISH` travels to that
//! shard's nodes only, instead of a `PUBLISH` that every node broadcasts to every other over
//! the cluster bus.
//!
//! The redis crate's cluster connection does the routing: `SSUBSCRIBE` goes to the master
//! of its first channel's slot over that node's connection, follows `MOVED` and refreshes
//! its slot map, and after a reconnection or a topology change subscribes each node again
//! to what it tracks for that node's slots. What it cannot do is take a channel the server
//! dropped (a slot migrated or failed over sends `sunsubscribe` to its subscribers) back:
//! its tracker forgets it. The reconciler of `pubsub` does that, from the `sunsubscribe`
//! pushes (see `State::dropped`).
//!
//! One `SSUBSCRIBE` may only name channels of one slot (CROSSSLOT otherwise), so channels
//! are grouped by slot; Mastodon's channel names carry no hash tags, so most groups hold
//! one channel. Groups are sent concurrently on the one multiplexed connection per node.

use std::collections::HashMap;

use futures::StreamExt;
use redis::RedisResult;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;

use super::timed;

/// `SSUBSCRIBE`/`SUNSUBSCRIBE` commands in flight at once.
const IN_FLIGHT: usize = 64;

/// `channels` grouped by key slot.
pub(super) fn by_slot(channels: &[String]) -> Vec<Vec<String>> {
    let mut groups: HashMap<Slot, Vec<String>> = HashMap::new();
    for c in channels {
        groups.entry(Slot::for_key(c)).or_default().push(c.clone());
    }
    groups.into_values().collect()
}

/// What to send for each slot group.
#[derive(Clone, Copy)]
pub(super) enum Op {
    SSubscribe,
    SUnsubscribe,
    /// Ordinary channels on a cluster without sharded ones: any node would do, since every
    /// node broadcasts every PUBLISH, but the redis crate, after a topology change,
    /// subscribes each channel again on its slot's master; sending it there in the first
    /// place keeps a channel from ending up subscribed on two nodes (twice delivered).
    Subscribe,
    Unsubscribe,
}

/// `op` for every slot group of `channels`, calling `done` with each group the cluster
/// confirmed, as soon as it did: a shard that is down (a master failing over) does not hold
/// back the channels of the others. The first error, if any, once every group was tried.
pub(super) async fn apply(
    conn: &ClusterConnection,
    channels: &[String],
    op: Op,
    mut done: impl FnMut(&[String]),
) -> RedisResult<()> {
    let mut results = futures::stream::iter(by_slot(channels))
        .map(|group| {
            let mut conn = conn.clone();
            async move {
                let result = match op {
                    Op::SSubscribe => timed(conn.ssubscribe(&group)).await,
                    Op::SUnsubscribe => timed(conn.sunsubscribe(&group)).await,
                    Op::Subscribe => timed(conn.subscribe(&group)).await,
                    Op::Unsubscribe => timed(conn.unsubscribe(&group)).await,
                };
                (group, result)
            }
        })
        .buffer_unordered(IN_FLIGHT);
    let mut first_error = None;
    while let Some((group, result)) = results.next().await {
        match result {
            Ok(()) => done(&group),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_grouped_by_their_key_slot() {
        // `{tag}`: Redis hashes only the tag, so these two share a slot whatever follows.
        let channels: Vec<String> = ["a{x}1", "b{x}2", "timeline:1", "timeline:2"]
            .map(String::from)
            .to_vec();
        let mut groups = by_slot(&channels);
        for g in &mut groups {
            g.sort();
        }
        groups.sort();
        assert_eq!(
            groups,
            vec![
                vec!["a{x}1".to_string(), "b{x}2".to_string()],
                vec!["timeline:1".to_string()],
                vec!["timeline:2".to_string()],
            ]
        );
    }
}
