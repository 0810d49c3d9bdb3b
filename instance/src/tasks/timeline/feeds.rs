//! The feed writes of one fan-out or removal, for many feeds at once. A local author with a
//! thousand followers means a thousand feed scripts per status: sent one by one, each with
//! the script's text, the round trips and Redis's script hashing cost more than the writes.
//!
//! On a standalone server they go in a few pipelines of `EVALSHA`, each pipeline opened by a
//! `SCRIPT LOAD` (Redis may have flushed its script cache since the last one; loading a
//! known script only hashes it). On a cluster every feed has a slot of its own and the crate
//! routes a pipeline to one slot, so there the scripts go one per feed, many in flight on
//! the multiplexed connection.

use std::sync::LazyLock;

use futures::{StreamExt, TryStreamExt};

use crate::api::timelines::feed::{self, Entry, FEED_MAX, Inserted, REBLOG_FALLOFF};
use crate::state::Redis;

/// Feeds per pipeline (standalone) or scripts in flight (cluster): enough to hide round
/// trips, few enough that other jobs' commands on the shared connection do not wait behind
/// a whole fan-out. A script costs Redis about 30 us on the loaded bench machine: with 256 a
/// pipeline, ten concurrent fan-outs on a busy server passed the client's 500 ms response
/// timeout and were retried whole.
const BATCH: usize = 64;

static INSERT_SHA: LazyLock<String> =
    LazyLock::new(|| redis::Script::new(feed::INSERT).get_hash().to_owned());
static REMOVE_SHA: LazyLock<String> =
    LazyLock::new(|| redis::Script::new(feed::REMOVE).get_hash().to_owned());

/// Inserts `entry` into each built feed of `accounts`; what it did to each, in order.
pub async fn insert(
    redis: &Redis,
    accounts: &[i64],
    entry: Entry,
) -> redis::RedisResult<Vec<Inserted>> {
    if let Redis::Cluster { .. } = redis {
        return futures::stream::iter(accounts.iter().copied())
            .map(|a| feed::insert(redis, a, entry))
            .buffered(BATCH)
            .try_collect()
            .await;
    }
    let mut done = Vec::with_capacity(accounts.len());
    for chunk in accounts.chunks(BATCH) {
        let mut pipe = redis::pipe();
        pipe.cmd("SCRIPT").arg("LOAD").arg(feed::INSERT).ignore();
        for account in chunk {
            pipe.cmd("EVALSHA")
                .arg(&*INSERT_SHA)
                .arg(2)
                .arg(feed::key(redis, *account))
                .arg(feed::reblogs_key(redis, *account))
                .arg(FEED_MAX)
                .arg("exists")
                .arg(REBLOG_FALLOFF)
                .arg(feed::pairs(&[entry]).collect::<Vec<_>>());
        }
        let codes: Vec<Vec<i64>> = redis.pipeline(&pipe).await?;
        done.extend(codes.iter().map(|c| feed::inserted(c.first().copied())));
    }
    Ok(done)
}

/// Removes `entries` from each feed of `accounts`; the ids each feed held, in order.
pub async fn remove(
    redis: &Redis,
    accounts: &[i64],
    entries: &[Entry],
) -> redis::RedisResult<Vec<Vec<i64>>> {
    if entries.is_empty() {
        return Ok(vec![Vec::new(); accounts.len()]);
    }
    if let Redis::Cluster { .. } = redis {
        return futures::stream::iter(accounts.iter().copied())
            .map(|a| feed::remove(redis, a, entries))
            .buffered(BATCH)
            .try_collect()
            .await;
    }
    let args: Vec<String> = feed::pairs(entries).collect();
    let mut done = Vec::with_capacity(accounts.len());
    for chunk in accounts.chunks(BATCH) {
        let mut pipe = redis::pipe();
        pipe.cmd("SCRIPT").arg("LOAD").arg(feed::REMOVE).ignore();
        for account in chunk {
            pipe.cmd("EVALSHA")
                .arg(&*REMOVE_SHA)
                .arg(2)
                .arg(feed::key(redis, *account))
                .arg(feed::reblogs_key(redis, *account))
                .arg(&args);
        }
        let removed: Vec<Vec<String>> = redis.pipeline(&pipe).await?;
        done.extend(
            removed
                .iter()
                .map(|ids| ids.iter().filter_map(|id| id.parse().ok()).collect()),
        );
    }
    Ok(done)
}
