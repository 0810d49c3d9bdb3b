//! Where jobs live in Redis, and every move between those places. Per queue, under the
//! hash tag `{fedi:jobs:<domain>:<queue>}`:
//!
//! - `:stream`, the runnable jobs, read through the consumer group `workers`; one field
//!   `job` holds the JSON of a `Job`. Acknowledged entries are deleted, so the stream holds
//!   exactly the waiting and the in-flight jobs;
//! - `:scheduled`, a sorted set of job JSON by the millisecond it becomes runnable (retries
//!   and `enqueue_at`);
//! - `:dead`, a sorted set of job ids by the millisecond they died, and `:dead:jobs`, a hash
//!   of those ids to their JSON (with the last error).
//!
//! Each move is one Lua script over keys of one slot, so a job is in exactly one place at
//! any time, and a move that lost a race (the entry was already acknowledged by a worker
//! that took it over) changes nothing.

use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};

use super::{Job, Queue, now_ms};
use crate::state::AppState;

/// The one consumer group every worker reads through.
pub(crate) const GROUP: &str = "workers";
/// Dead jobs kept, as Sidekiq: the newest 10,000, for at most six months.
const DEAD_MAX: usize = 10_000;
const DEAD_MAX_AGE_MS: i64 = 180 * 24 * 3600 * 1000;

pub(crate) struct Keys {
    pub stream: String,
    pub scheduled: String,
    pub dead: String,
    pub dead_jobs: String,
}

/// The hash tag of a queue's keys. The instance's domain is part of it, so that instances
/// (and tests) sharing one Redis never take each other's jobs.
pub(crate) fn tag(state: &AppState, queue: Queue) -> String {
    state.redis.keys().jobs(queue)
}

pub(crate) fn keys(state: &AppState, queue: Queue) -> Keys {
    let tag = tag(state, queue);
    Keys {
        stream: format!("{tag}:stream"),
        scheduled: format!("{tag}:scheduled"),
        dead: format!("{tag}:dead"),
        dead_jobs: format!("{tag}:dead:jobs"),
    }
}

/// A stream entry as read: its id (needed to acknowledge it) and the job's JSON.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub entry_id: String,
    pub raw: String,
    /// Times it was handed to a worker: more than one only for entries taken over from
    /// workers that stopped mid-job.
    pub deliveries: u64,
}

fn entry(id: StreamId) -> Entry {
    Entry {
        raw: id.get::<String>("job").unwrap_or_default(),
        entry_id: id.id,
        deliveries: 1,
    }
}

/// `EVAL source <keys>`; the caller appends the arguments.
fn script(source: &str, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(source).arg(keys.len());
    for k in keys {
        cmd.arg(*k);
    }
    cmd
}

fn json(job: &Job) -> String {
    serde_json::to_string(job).expect("a job serializes")
}

pub(crate) async fn push(state: &AppState, queue: Queue, job: &Job) -> redis::RedisResult<()> {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(keys(state, queue).stream)
        .arg("*")
        .arg("job")
        .arg(json(job));
    state.redis.query::<String>(&cmd).await.map(drop)
}

pub(crate) async fn push_at(
    state: &AppState,
    queue: Queue,
    job: &Job,
    at_ms: i64,
) -> redis::RedisResult<()> {
    if at_ms <= now_ms() {
        return push(state, queue, job).await;
    }
    let mut cmd = redis::cmd("ZADD");
    cmd.arg(keys(state, queue).scheduled)
        .arg(at_ms)
        .arg(json(job));
    state.redis.query::<i64>(&cmd).await.map(drop)
}

/// Creates the queue's consumer group (and stream) unless it exists. From the start of the
/// stream, so that jobs queued before any worker ever ran are not skipped.
pub(crate) async fn ensure_group(state: &AppState, queue: Queue) -> redis::RedisResult<()> {
    let mut cmd = redis::cmd("XGROUP");
    cmd.arg("CREATE")
        .arg(keys(state, queue).stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM");
    match state.redis.query::<String>(&cmd).await {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        r => r.map(drop),
    }
}

/// Up to `count` jobs never delivered before, now owned by `consumer`.
pub(crate) async fn fetch(
    state: &AppState,
    queue: Queue,
    consumer: &str,
    count: usize,
) -> redis::RedisResult<Vec<Entry>> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(keys(state, queue).stream)
        .arg(">");
    let reply: Option<StreamReadReply> = state.redis.query(&cmd).await?;
    Ok(reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .map(entry)
        .collect())
}

/// Takes over up to `count` entries that other consumers fetched and have not touched for
/// `min_idle_ms`: their workers died or hang.
pub(crate) async fn reclaim(
    state: &AppState,
    queue: Queue,
    consumer: &str,
    min_idle_ms: u64,
    count: usize,
) -> redis::RedisResult<Vec<Entry>> {
    let stream = keys(state, queue).stream;
    let mut out = Vec::new();
    let mut cursor = "0-0".to_string();
    // Each call scans at most 10 * COUNT pending entries: a few rounds cover a long list.
    for _ in 0..10 {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(min_idle_ms)
            .arg(&cursor)
            .arg("COUNT")
            .arg(count - out.len());
        let reply: StreamAutoClaimReply = state.redis.query(&cmd).await?;
        out.extend(reply.claimed.into_iter().map(entry));
        cursor = reply.next_stream_id;
        if cursor == "0-0" || out.len() >= count {
            break;
        }
    }
    for e in &mut out {
        let mut pending = redis::cmd("XPENDING");
        pending
            .arg(&stream)
            .arg(GROUP)
            .arg(&e.entry_id)
            .arg(&e.entry_id)
            .arg(1);
        // (id, consumer, idle ms, deliveries)
        let info: Vec<(String, String, u64, u64)> = state.redis.query(&pending).await?;
        e.deliveries = info.first().map_or(1, |i| i.3);
    }
    Ok(out)
}

/// Resets the idle time of entries `consumer` is still running, so that nobody reclaims
/// them while they run.
pub(crate) async fn keep_alive(
    state: &AppState,
    queue: Queue,
    consumer: &str,
    entry_ids: &[String],
) -> redis::RedisResult<()> {
    if entry_ids.is_empty() {
        return Ok(());
    }
    let mut cmd = redis::cmd("XCLAIM");
    cmd.arg(keys(state, queue).stream)
        .arg(GROUP)
        .arg(consumer)
        .arg(0);
    for id in entry_ids {
        cmd.arg(id);
    }
    cmd.arg("JUSTID");
    state.redis.query::<redis::Value>(&cmd).await.map(drop)
}

/// Done: the entry leaves the stream.
pub(crate) async fn ack(state: &AppState, queue: Queue, entry_id: &str) -> redis::RedisResult<()> {
    const ACK: &str = "\
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) \
        redis.call('XDEL', KEYS[1], ARGV[2]) \
        return 1";
    let stream = keys(state, queue).stream;
    let mut cmd = script(ACK, &[&stream]);
    cmd.arg(GROUP).arg(entry_id);
    state.redis.query::<i64>(&cmd).await.map(drop)
}

/// Takes the entry out of the stream and puts `job` (with its failure recorded) into the
/// scheduled set for `due_ms`. False when the entry was already acknowledged elsewhere.
pub(crate) async fn retry_later(
    state: &AppState,
    queue: Queue,
    entry_id: &str,
    job: &Job,
    due_ms: i64,
) -> redis::RedisResult<bool> {
    const RETRY: &str = "\
        if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end \
        redis.call('XDEL', KEYS[1], ARGV[2]) \
        redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) \
        return 1";
    let k = keys(state, queue);
    let mut cmd = script(RETRY, &[&k.stream, &k.scheduled]);
    cmd.arg(GROUP).arg(entry_id).arg(due_ms).arg(json(job));
    Ok(state.redis.query::<i64>(&cmd).await? == 1)
}

/// Takes the entry out of the stream into the dead set, trimming the dead set to its
/// limits. False when the entry was already acknowledged elsewhere.
pub(crate) async fn kill(
    state: &AppState,
    queue: Queue,
    entry_id: &str,
    job: &Job,
) -> redis::RedisResult<bool> {
    const KILL: &str = "\
        if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end \
        redis.call('XDEL', KEYS[1], ARGV[2]) \
        redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) \
        redis.call('HSET', KEYS[3], ARGV[4], ARGV[5]) \
        local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[7]) \
        local over = redis.call('ZCARD', KEYS[2]) - #old - tonumber(ARGV[6]) \
        if over > 0 then \
            for _, id in ipairs(redis.call('ZRANGE', KEYS[2], #old, #old + over - 1)) do \
                old[#old + 1] = id \
            end \
        end \
        for _, id in ipairs(old) do \
            redis.call('ZREM', KEYS[2], id) \
            redis.call('HDEL', KEYS[3], id) \
        end \
        return 1";
    let k = keys(state, queue);
    let now = now_ms();
    let mut cmd = script(KILL, &[&k.stream, &k.dead, &k.dead_jobs]);
    cmd.arg(GROUP)
        .arg(entry_id)
        .arg(now)
        .arg(&job.id)
        .arg(json(job))
        .arg(DEAD_MAX)
        .arg(now - DEAD_MAX_AGE_MS);
    Ok(state.redis.query::<i64>(&cmd).await? == 1)
}

/// Puts an in-flight entry back at the end of its queue as a new entry, for any worker to
/// take at once (a worker shutting down before the job finished).
pub(crate) async fn requeue(
    state: &AppState,
    queue: Queue,
    entry: &Entry,
) -> redis::RedisResult<bool> {
    const REQUEUE: &str = "\
        if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end \
        redis.call('XDEL', KEYS[1], ARGV[2]) \
        redis.call('XADD', KEYS[1], '*', 'job', ARGV[3]) \
        return 1";
    let stream = keys(state, queue).stream;
    let mut cmd = script(REQUEUE, &[&stream]);
    cmd.arg(GROUP).arg(&entry.entry_id).arg(&entry.raw);
    Ok(state.redis.query::<i64>(&cmd).await? == 1)
}

/// Moves up to `limit` scheduled jobs whose time has come into the stream.
pub(crate) async fn promote(
    state: &AppState,
    queue: Queue,
    limit: usize,
) -> redis::RedisResult<usize> {
    const PROMOTE: &str = "\
        local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2]) \
        for _, job in ipairs(due) do \
            redis.call('XADD', KEYS[2], '*', 'job', job) \
            redis.call('ZREM', KEYS[1], job) \
        end \
        return #due";
    let k = keys(state, queue);
    let mut cmd = script(PROMOTE, &[&k.scheduled, &k.stream]);
    cmd.arg(now_ms()).arg(limit);
    state.redis.query::<usize>(&cmd).await
}

/// A queue's state, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct QueueStats {
    /// Runnable, not yet taken by a worker.
    pub waiting: u64,
    /// Taken by a worker and not yet acknowledged.
    pub in_flight: u64,
    pub scheduled: u64,
    pub dead: u64,
    /// When the oldest waiting job became runnable, milliseconds since the epoch.
    pub oldest_waiting_ms: Option<i64>,
}

pub(crate) async fn stats(state: &AppState, queue: Queue) -> redis::RedisResult<QueueStats> {
    // The first entry after the group's last delivered one is the oldest waiting job;
    // stream ids start with the millisecond they were added.
    const STATS: &str = "\
        local len = redis.call('XLEN', KEYS[1]) \
        local pending, oldest, last = 0, '', '0-0' \
        if len > 0 then \
            for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do \
                local m = {} \
                for i = 1, #g, 2 do m[g[i]] = g[i + 1] end \
                if m['name'] == ARGV[1] then \
                    pending = m['pending'] \
                    last = m['last-delivered-id'] \
                end \
            end \
            local next = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1) \
            if #next > 0 then oldest = next[1][1] end \
        end \
        return {len, pending, oldest, redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3])}";
    let k = keys(state, queue);
    let mut cmd = script(STATS, &[&k.stream, &k.scheduled, &k.dead]);
    cmd.arg(GROUP);
    let (len, pending, oldest, scheduled, dead): (u64, u64, String, u64, u64) =
        state.redis.query(&cmd).await?;
    Ok(QueueStats {
        waiting: len.saturating_sub(pending),
        in_flight: pending,
        scheduled,
        dead,
        oldest_waiting_ms: oldest.split_once('-').and_then(|(ms, _)| ms.parse().ok()),
    })
}

/// A job in the dead set.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadJob {
    pub queue: Queue,
    /// Milliseconds since the epoch.
    pub died_at: i64,
    pub job: Job,
}

/// The newest `limit` dead jobs of `queue`, newest first.
pub async fn dead_list(
    state: &AppState,
    queue: Queue,
    limit: usize,
) -> anyhow::Result<Vec<DeadJob>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // Lua numbers are doubles and print large ones in exponent notation, which ZREVRANGE
    // refuses; the dead set never holds more than DEAD_MAX anyway.
    let limit = limit.min(DEAD_MAX);
    const LIST: &str = "\
        local ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES') \
        local out = {} \
        for i = 1, #ids, 2 do \
            out[#out + 1] = ids[i + 1] \
            out[#out + 1] = redis.call('HGET', KEYS[2], ids[i]) or '' \
        end \
        return out";
    let k = keys(state, queue);
    let mut cmd = script(LIST, &[&k.dead, &k.dead_jobs]);
    cmd.arg(limit);
    let flat: Vec<String> = state.redis.query(&cmd).await?;
    flat.chunks(2)
        .filter(|pair| !pair[1].is_empty())
        .map(|pair| {
            Ok(DeadJob {
                queue,
                died_at: pair[0].parse::<f64>()? as i64,
                job: serde_json::from_str(&pair[1])?,
            })
        })
        .collect()
}

/// The dead job `id`, whichever queue it died on.
pub async fn dead_get(state: &AppState, id: &str) -> anyhow::Result<Option<DeadJob>> {
    for queue in Queue::ALL {
        let k = keys(state, queue);
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&k.dead_jobs).arg(id);
        let Some(raw) = state.redis.query::<Option<String>>(&cmd).await? else {
            continue;
        };
        let mut score = redis::cmd("ZSCORE");
        score.arg(&k.dead).arg(id);
        let died_at: Option<f64> = state.redis.query(&score).await?;
        return Ok(Some(DeadJob {
            queue,
            died_at: died_at.unwrap_or_default() as i64,
            job: serde_json::from_str(&raw)?,
        }));
    }
    Ok(None)
}

/// Moves dead job `id` of `queue` back to the end of its queue, its history kept (so one
/// more failure kills it again). False when it is not in the dead set.
pub async fn dead_retry(state: &AppState, queue: Queue, id: &str) -> anyhow::Result<bool> {
    const RETRY: &str = "\
        local job = redis.call('HGET', KEYS[2], ARGV[1]) \
        if not job then return 0 end \
        redis.call('XADD', KEYS[3], '*', 'job', job) \
        redis.call('ZREM', KEYS[1], ARGV[1]) \
        redis.call('HDEL', KEYS[2], ARGV[1]) \
        return 1";
    let k = keys(state, queue);
    let mut cmd = script(RETRY, &[&k.dead, &k.dead_jobs, &k.stream]);
    cmd.arg(id);
    Ok(state.redis.query::<i64>(&cmd).await? == 1)
}

/// Forgets dead job `id` of `queue`. False when it is not in the dead set.
pub async fn dead_delete(state: &AppState, queue: Queue, id: &str) -> anyhow::Result<bool> {
    const DELETE: &str = "\
        redis.call('ZREM', KEYS[1], ARGV[1]) \
        return redis.call('HDEL', KEYS[2], ARGV[1])";
    let k = keys(state, queue);
    let mut cmd = script(DELETE, &[&k.dead, &k.dead_jobs]);
    cmd.arg(id);
    Ok(state.redis.query::<i64>(&cmd).await? == 1)
}

/// Forgets consumers (worker processes that are gone) that own no entry and have not read
/// for `min_idle_ms`; one with entries is kept until they are reclaimed, since deleting a
/// consumer drops its pending entries.
pub(crate) async fn prune_consumers(
    state: &AppState,
    queue: Queue,
    min_idle_ms: u64,
) -> redis::RedisResult<u64> {
    const PRUNE: &str = "\
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
        local n = 0 \
        for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do \
            local m = {} \
            for i = 1, #c, 2 do m[c[i]] = c[i + 1] end \
            if m['pending'] == 0 and m['idle'] > tonumber(ARGV[2]) then \
                redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], m['name']) \
                n = n + 1 \
            end \
        end \
        return n";
    let stream = keys(state, queue).stream;
    let mut cmd = script(PRUNE, &[&stream]);
    cmd.arg(GROUP).arg(min_idle_ms);
    state.redis.query(&cmd).await
}
