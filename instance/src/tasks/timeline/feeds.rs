//! The feed writes of one fan-out or removal, for many feeds at once. A local author with a
//! thousand followers means a thousand feed inserts per status, and at 200 statuses a
//! second the worker asks Redis for 200,000 of them a second: what each costs Redis decides
//! whether the worker keeps up with the api.
//!
//! A plain status (the common case) goes in with [`INSERT_PLAIN`], many feeds per script
//! call on a standalone server; reblogs, which need the de-duplication bookkeeping, with
//! [`feed::INSERT`], one script per feed in pipelines. On a cluster every feed has a slot of
//! its own, so there the scripts go one per feed, many in flight on the multiplexed
//! connection.

use std::sync::LazyLock;

use futures::{StreamExt, TryStreamExt};

use crate::api::timelines::feed::{self, Entry, FEED_MAX, Inserted, REBLOG_FALLOFF};
use crate::state::Redis;

/// Feeds per script call or pipeline (standalone), scripts in flight (cluster): enough to
/// hide round trips, few enough that other jobs' commands on the shared connection do not
/// wait behind a whole fan-out (Redis runs one script at a time; 64 plain inserts hold it
/// a few hundred microseconds). With 256 per pipeline of per-feed scripts, ten concurrent
/// fan-outs on the loaded bench machine passed the client's 500 ms response timeout and
/// were retried whole.
const BATCH: usize = 64;

/// [`feed::INSERT`] in `exists` mode for a status that is not a reblog, into the feeds of
/// KEYS (feed, reblog tracking) pairs, with the same codes. Cheaper in the common case: a
/// feed tracking no reblogs cannot hold the status as a boosted original nor have tracking
/// to expire past the falloff, so the insert is `ZCARD`, `ZCARD`, `ZADD NX` (3 Redis calls
/// instead of 7). A full feed is trimmed back to the cap once it is [`TRIM_SLACK`] over it
/// rather than at every insert: the extra entries are the oldest, past what clients page
/// to in practice, and trimming them in one go costs about what trimming one does.
/// ARGV: cap, falloff, id, slack.
const INSERT_PLAIN: &str = r"
local cap, falloff, id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local slack = tonumber(ARGV[4])
local out = {}
for k = 1, #KEYS, 2 do
  local feed, reblogs = KEYS[k], KEYS[k + 1]
  local code = 0
  local n = redis.call('ZCARD', feed)
  if n > 0 then
    local tracked = redis.call('ZCARD', reblogs)
    if tracked == 0 then
      code = 3 - redis.call('ZADD', feed, 'NX', id, id) * 2
    elseif redis.call('ZSCORE', feed, id) then
      code = 3
    elseif redis.call('ZSCORE', reblogs, id) then
      code = 2
    else
      code = 1
      redis.call('ZADD', feed, id, id)
    end
    if code == 1 then
      if n >= cap + slack then
        redis.call('ZREMRANGEBYRANK', feed, 0, -(cap + 1))
      end
      if tracked > 0 then
        local edge = redis.call('ZREVRANGE', feed, falloff, falloff, 'WITHSCORES')
        if edge[2] then
          for _, o in ipairs(redis.call('ZRANGEBYSCORE', reblogs, '-inf', edge[2])) do
            redis.call('ZREM', reblogs, o)
            redis.call('DEL', feed .. ':reblogs:' .. o)
          end
        end
      end
    end
  end
  out[#out + 1] = code
end
return out
";

/// How far over [`FEED_MAX`] a feed grows before [`INSERT_PLAIN`] trims it.
const TRIM_SLACK: usize = 32;

static INSERT_SHA: LazyLock<String> =
    LazyLock::new(|| redis::Script::new(feed::INSERT).get_hash().to_owned());
static INSERT_PLAIN_SHA: LazyLock<String> =
    LazyLock::new(|| redis::Script::new(INSERT_PLAIN).get_hash().to_owned());
static REMOVE_SHA: LazyLock<String> =
    LazyLock::new(|| redis::Script::new(feed::REMOVE).get_hash().to_owned());

/// Inserts `entry` into each built feed of `accounts`; what it did to each, in order.
pub async fn insert(
    redis: &Redis,
    accounts: &[i64],
    entry: Entry,
) -> redis::RedisResult<Vec<Inserted>> {
    if entry.reblog_of.is_none() {
        return insert_plain(redis, accounts, entry.id).await;
    }
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

/// [`insert`] of a status that is not a reblog: one [`INSERT_PLAIN`] call per [`BATCH`]
/// feeds on a standalone server, per feed on a cluster.
async fn insert_plain(
    redis: &Redis,
    accounts: &[i64],
    id: i64,
) -> redis::RedisResult<Vec<Inserted>> {
    let args = [
        FEED_MAX.to_string(),
        REBLOG_FALLOFF.to_string(),
        id.to_string(),
        TRIM_SLACK.to_string(),
    ];
    let keys = |chunk: &[i64]| -> Vec<String> {
        chunk
            .iter()
            .flat_map(|a| [feed::key(redis, *a), feed::reblogs_key(redis, *a)])
            .collect()
    };
    let codes: Vec<i64> = match redis {
        Redis::Standalone { .. } => {
            let mut codes = Vec::with_capacity(accounts.len());
            for chunk in accounts.chunks(BATCH) {
                codes.extend(insert_plain_call(redis, keys(chunk), &args).await?);
            }
            codes
        }
        Redis::Cluster { .. } => {
            let calls: Vec<Vec<i64>> = futures::stream::iter(accounts.chunks(1).map(keys))
                .map(|k| insert_plain_call(redis, k, &args))
                .buffered(BATCH)
                .try_collect()
                .await?;
            calls.into_iter().flatten().collect()
        }
    };
    Ok(codes.into_iter().map(|c| feed::inserted(Some(c))).collect())
}

async fn insert_plain_call(
    redis: &Redis,
    keys: Vec<String>,
    args: &[String],
) -> redis::RedisResult<Vec<i64>> {
    evalsha(redis, &INSERT_PLAIN_SHA, INSERT_PLAIN, &keys, args).await
}

/// `EVALSHA`, and `EVAL` when Redis does not know the script (it was restarted or its
/// script cache flushed): sending the text each time would make Redis hash it each time.
async fn evalsha<T: redis::FromRedisValue>(
    redis: &Redis,
    sha: &str,
    script: &str,
    keys: &[String],
    args: &[String],
) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(sha).arg(keys.len()).arg(keys).arg(args);
    match redis.query(&cmd).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
            redis.query(&cmd).await
        }
        other => other,
    }
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
