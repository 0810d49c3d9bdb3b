//! Home feeds, as Mastodon's `FeedManager` keeps them: one Redis sorted set per account of
//! status ids scored by themselves, capped at [`FEED_MAX`], with its reblog tracking beside
//! it so that a status boosted by several followed accounts shows once. The worker fills
//! and trims them (`crate::tasks::timeline`); reading pages through the set and filters
//! what the viewer may see; a missing feed (new account, evicted key, an account back after
//! a week away) is rebuilt from PostgreSQL.
//!
//! Keys share the account's hash tag (`feed:home:{<id>}`, `...:reblogs`,
//! `...:reblogs:<original>`), so that each script below runs on one cluster node.
//!
//! Redis is a cache here: what the viewer may not see is filtered again when reading, and
//! the worst outcome of a lost write is a feed missing an entry until it is rebuilt.

use serde::{Deserialize, Serialize};

use crate::state::{AppState, Redis};

/// Mastodon's `FeedManager::MAX_ITEMS`.
pub const FEED_MAX: usize = 400;
/// Mastodon's `FeedManager::REBLOG_FALLOFF`: a boost of a status that is, or was boosted,
/// among this many newest entries is not shown again.
pub const REBLOG_FALLOFF: usize = 40;

/// Accounts scored by when they last read their home (Unix seconds): feeds of accounts
/// that stopped reading are dropped by the worker (see `tasks::timeline`), as Mastodon
/// drops those of users inactive for [`ACTIVE_FOR`], and rebuilt when they come back.
fn active_key(redis: &Redis) -> String {
    redis.keys().key("feed:home:active")
}
/// Mastodon's `User::ACTIVE_DURATION`.
pub const ACTIVE_FOR: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The account's feed (in the instance's namespace, see `redis_keys`). A feed missing
/// under it, as every feed is right after the upgrade that introduced the namespace, is
/// rebuilt from PostgreSQL on the next home read.
pub fn key(redis: &Redis, account_id: i64) -> String {
    redis.keys().key(&format!("feed:home:{{{account_id}}}"))
}

/// originals -> the reblog that represents them, scored by that reblog's id.
pub(crate) fn reblogs_key(redis: &Redis, account_id: i64) -> String {
    redis
        .keys()
        .key(&format!("feed:home:{{{account_id}}}:reblogs"))
}

/// A feed entry: a status, or a reblog with the status it boosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: i64,
    pub reblog_of: Option<i64>,
}

/// What inserting an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The feed was not built (the account has not read it lately): its rebuild will
    /// include the status.
    NoFeed,
    Added,
    /// A boost of something already shown: tracked, not added.
    Duplicate,
    /// Already in the feed: a retried job.
    Present,
}

/// Mastodon's `add_to_feed` and `trim` in one script. ARGV: cap, mode (`exists`: only into
/// a built feed; `reset`: start from an empty feed, as a rebuild does), falloff, then id
/// and original (0 for none) pairs, oldest first. Returns a code per pair: 0 no feed, 1
/// added, 2 duplicate, 3 already there (a retried job). Ids stay strings: Lua numbers are doubles.
pub(crate) const INSERT: &str = r"
local feed, reblogs = KEYS[1], KEYS[2]
local cap, mode, falloff = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
if mode == 'reset' then
  for _, o in ipairs(redis.call('ZRANGE', reblogs, 0, -1)) do
    redis.call('DEL', feed .. ':reblogs:' .. o)
  end
  redis.call('DEL', feed, reblogs)
elseif mode == 'exists' and redis.call('EXISTS', feed) == 0 then
  return {0}
end
local out = {}
for i = 4, #ARGV, 2 do
  local id, orig = ARGV[i], ARGV[i + 1]
  local code = 1
  if redis.call('ZSCORE', feed, id) then
    code = 3
  elseif orig ~= '0' then
    local rank = redis.call('ZREVRANK', feed, orig)
    if rank and rank < falloff then
      code = 2
    elseif redis.call('ZADD', reblogs, 'NX', id, orig) == 1 then
      redis.call('ZADD', feed, id, id)
    else
      redis.call('SADD', feed .. ':reblogs:' .. orig, id)
      code = 2
    end
  elseif redis.call('ZSCORE', reblogs, id) then
    code = 2
  else
    redis.call('ZADD', feed, id, id)
  end
  out[#out + 1] = code
end
redis.call('ZREMRANGEBYRANK', feed, 0, -(cap + 1))
local edge = redis.call('ZREVRANGE', feed, falloff, falloff, 'WITHSCORES')
if edge[2] then
  for _, o in ipairs(redis.call('ZRANGEBYSCORE', reblogs, '-inf', edge[2])) do
    redis.call('ZREM', reblogs, o)
    redis.call('DEL', feed .. ':reblogs:' .. o)
  end
end
return out
";

/// Mastodon's `remove_from_feed`: ARGV is id and original (0 for none) pairs. Removing the
/// reblog that represents its original brings back another tracked reblog of it, the
/// oldest, as Mastodon does (and tracks that one in its place). Returns the ids removed.
pub(crate) const REMOVE: &str = r"
local feed, reblogs = KEYS[1], KEYS[2]
local function older(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local out = {}
for i = 1, #ARGV, 2 do
  local id, orig = ARGV[i], ARGV[i + 1]
  if orig ~= '0' then
    local set = feed .. ':reblogs:' .. orig
    redis.call('SREM', set, id)
    if redis.call('ZSCORE', feed, id) then
      redis.call('ZREM', reblogs, orig)
      local other
      for _, r in ipairs(redis.call('SMEMBERS', set)) do
        if not other or older(r, other) then other = r end
      end
      if other then
        redis.call('SREM', set, other)
        redis.call('ZADD', reblogs, other, orig)
        redis.call('ZADD', feed, other, other)
      end
    end
  else
    redis.call('DEL', feed .. ':reblogs:' .. id)
    redis.call('ZREM', reblogs, id)
  end
  if redis.call('ZREM', feed, id) == 1 then out[#out + 1] = id end
end
return out
";

pub(crate) fn pairs(entries: &[Entry]) -> impl Iterator<Item = String> + '_ {
    entries
        .iter()
        .flat_map(|e| [e.id.to_string(), e.reblog_of.unwrap_or(0).to_string()])
}

async fn run_insert(
    redis: &Redis,
    account: i64,
    mode: &str,
    entries: &[Entry],
) -> redis::RedisResult<Vec<i64>> {
    let mut args = vec![
        FEED_MAX.to_string(),
        mode.to_string(),
        REBLOG_FALLOFF.to_string(),
    ];
    args.extend(pairs(entries));
    let (feed, reblogs) = (key(redis, account), reblogs_key(redis, account));
    redis.eval(INSERT, &[&feed, &reblogs], &args).await
}

/// Drops `account`'s feed with its reblog tracking.
const DROP: &str = r"
for _, o in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  redis.call('DEL', KEYS[1] .. ':reblogs:' .. o)
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
";

/// Records that `account` reads its home now.
pub async fn touch(redis: &Redis, account: i64) -> redis::RedisResult<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut cmd = redis::cmd("ZADD");
    cmd.arg(active_key(redis)).arg(now).arg(account);
    redis.query::<i64>(&cmd).await.map(drop)
}

/// Drops the feeds of accounts that have not read their home for [`ACTIVE_FOR`], at most
/// `limit` of them; returns how many. Fan-out skips feeds that are not built, so theirs
/// stay away until the account reads home again and it is rebuilt.
pub async fn drop_inactive(redis: &Redis, limit: usize) -> redis::RedisResult<usize> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let before = now.saturating_sub(ACTIVE_FOR.as_secs()) as i64;
    let accounts = redis
        .zrange_by_score(&active_key(redis), None, Some(before), limit, true)
        .await?;
    for account in &accounts {
        let (feed, reblogs) = (key(redis, *account), reblogs_key(redis, *account));
        redis.eval::<i64>(DROP, &[&feed, &reblogs], &[]).await?;
        redis.zrem(&active_key(redis), &[*account]).await?;
    }
    Ok(accounts.len())
}

/// Adds a new status or reblog to `account`'s feed, if that feed is built.
pub async fn insert(redis: &Redis, account: i64, entry: Entry) -> redis::RedisResult<Inserted> {
    let codes = run_insert(redis, account, "exists", &[entry]).await?;
    Ok(inserted(codes.first().copied()))
}

/// What [`INSERT`]'s code for one entry means.
pub(crate) fn inserted(code: Option<i64>) -> Inserted {
    match code {
        Some(1) => Inserted::Added,
        Some(2) => Inserted::Duplicate,
        Some(3) => Inserted::Present,
        _ => Inserted::NoFeed,
    }
}

/// Removes `entries` from `account`'s feed; returns the ids that were in it.
pub async fn remove(
    redis: &Redis,
    account: i64,
    entries: &[Entry],
) -> redis::RedisResult<Vec<i64>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let args: Vec<String> = pairs(entries).collect();
    let (feed, reblogs) = (key(redis, account), reblogs_key(redis, account));
    let removed: Vec<String> = redis.eval(REMOVE, &[&feed, &reblogs], &args).await?;
    Ok(removed.iter().filter_map(|id| id.parse().ok()).collect())
}

/// The entries of `account`'s feed whose status matches `condition` (SQL over `s`, the
/// entry, `o`, its original or NULLs, and `$2`, the other account).
async fn entries_where(
    state: &AppState,
    account: i64,
    condition: &'static str,
    other: i64,
) -> anyhow::Result<Vec<Entry>> {
    let members = state.redis.zmembers(&key(&state.redis, account)).await?;
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT s.id, s.reblog_of_id FROM statuses s LEFT JOIN statuses o ON o.id = s.reblog_of_id \
         WHERE s.id = ANY($1) AND ({condition})"
    );
    let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&members)
        .bind(other)
        .fetch_all(state.db.primary())
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, reblog_of)| Entry { id, reblog_of })
        .collect())
}

/// After `me` stops following `target`: their statuses and reblogs leave `me`'s feed
/// (Mastodon's `unmerge_from_home`). Reblogs of them by others stay, as in Mastodon.
pub async fn unmerge(state: &AppState, me: i64, target: i64) -> anyhow::Result<Vec<i64>> {
    let entries = entries_where(state, me, "s.account_id = $2", target).await?;
    Ok(remove(&state.redis, me, &entries).await?)
}

/// After `me` blocks or mutes `target`: what they wrote or boosted, boosts of what they
/// wrote, and what mentions them leave `me`'s feed (Mastodon's `clear_from_home`).
/// Returns the ids removed, for `delete` events.
pub async fn clear_from_home(state: &AppState, me: i64, target: i64) -> anyhow::Result<Vec<i64>> {
    const CONDITION: &str = "s.account_id = $2 OR o.account_id = $2 \
        OR EXISTS (SELECT 1 FROM mentions m WHERE m.account_id = $2 \
                   AND m.status_id IN (s.id, o.id))";
    let entries = entries_where(state, me, CONDITION, target).await?;
    Ok(remove(&state.redis, me, &entries).await?)
}

/// Drops `me`'s feed: the next read rebuilds it from PostgreSQL. Used when what belongs in
/// it changed wholesale (a new follow, an exclusive list's members): the rebuild is exact,
/// where merging entries in would have to replay the reblog de-duplication.
pub async fn invalidate(state: &AppState, me: i64) {
    if let Err(e) = state.redis.del(&key(&state.redis, me)).await {
        tracing::warn!(error = %e, "cannot drop a home feed");
    }
}

/// SQL: whether the status `$s` (its original `$o`, NULLs for a non-reblog) may go into the
/// feeds of `$r`, one of the author's followers: Mastodon's `filter_from_home` checks shared
/// by home and list feeds. Nothing from or boosting or mentioning an account `$r` blocks or
/// mutes; nothing from an author blocking `$r`.
macro_rules! feed_allows {
    ($s:literal, $o:literal, $r:literal) => {
        concat!(
            "NOT EXISTS (SELECT 1 FROM blocks fb WHERE fb.account_id = ",
            $r,
            " AND (fb.target_account_id IN (",
            $s,
            ".account_id, ",
            $o,
            ".account_id) \
                   OR fb.target_account_id IN (SELECT fm.account_id FROM mentions fm \
                        WHERE fm.status_id IN (",
            $s,
            ".id, ",
            $o,
            ".id)))) \
             AND NOT EXISTS (SELECT 1 FROM mutes fu WHERE fu.account_id = ",
            $r,
            " AND (fu.expires_at IS NULL OR fu.expires_at > now()) \
               AND (fu.target_account_id IN (",
            $s,
            ".account_id, ",
            $o,
            ".account_id) \
                   OR fu.target_account_id IN (SELECT fm.account_id FROM mentions fm \
                        WHERE fm.status_id IN (",
            $s,
            ".id, ",
            $o,
            ".id)))) \
             AND NOT EXISTS (SELECT 1 FROM blocks fbb WHERE fbb.target_account_id = ",
            $r,
            " AND fbb.account_id IN (",
            $s,
            ".account_id, ",
            $o,
            ".account_id))"
        )
    };
}

/// SQL: the home-only part of `filter_from_home` for follower `$r`: nothing from a member
/// of one of `$r`'s exclusive lists; replies only to `$r`, to oneself or to an account `$r`
/// follows.
macro_rules! home_allows {
    ($s:literal, $r:literal) => {
        concat!(
            "NOT EXISTS (SELECT 1 FROM lists xl JOIN list_accounts xla ON xla.list_id = xl.id \
                 WHERE xl.account_id = ",
            $r,
            " AND xl.exclusive \
                   AND xla.account_id = ",
            $s,
            ".account_id) \
             AND (",
            $s,
            ".in_reply_to_account_id IS NULL \
                  OR ",
            $s,
            ".in_reply_to_account_id IN (",
            $s,
            ".account_id, ",
            $r,
            ") \
                  OR EXISTS (SELECT 1 FROM follows rf WHERE rf.account_id = ",
            $r,
            " AND rf.target_account_id = ",
            $s,
            ".in_reply_to_account_id))"
        )
    };
}

/// SQL: whether follow `$f` carries status `$s` at all: boosts unless turned off, the
/// follow's languages, direct statuses only to those they mention.
macro_rules! follow_carries {
    ($f:literal, $s:literal) => {
        concat!(
            "(",
            $s,
            ".reblog_of_id IS NULL OR ",
            $f,
            ".show_reblogs) \
             AND (",
            $f,
            ".languages IS NULL OR ",
            $s,
            ".language IS NULL \
                  OR ",
            $s,
            ".language = ANY(",
            $f,
            ".languages)) \
             AND (",
            $s,
            ".visibility <> 'direct' OR EXISTS (SELECT 1 FROM mentions dm \
                  WHERE dm.status_id = ",
            $s,
            ".id AND dm.account_id = ",
            $f,
            ".account_id))"
        )
    };
}

pub(crate) use {feed_allows, follow_carries, home_allows};

/// Rebuilds `me`'s feed from PostgreSQL: the newest [`FEED_MAX`] of their own statuses and
/// those their follows carry into home, by the rules fan-out applies, replayed oldest first
/// so that boosts are de-duplicated as if they had arrived one by one (Mastodon's
/// `populate_home`). Mutes and blocks are applied as of now.
pub async fn rebuild(state: &AppState, me: i64) -> anyhow::Result<()> {
    let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(concat!(
        "SELECT s.id, s.reblog_of_id FROM statuses s WHERE s.account_id = $1 \
         UNION \
         SELECT s.id, s.reblog_of_id FROM follows f \
           JOIN statuses s ON s.account_id = f.target_account_id \
           LEFT JOIN statuses o ON o.id = s.reblog_of_id \
         WHERE f.account_id = $1 AND ",
        follow_carries!("f", "s"),
        " AND ",
        feed_allows!("s", "o", "$1"),
        " AND ",
        home_allows!("s", "$1"),
        // Public originals under the hashtags the account follows, as fan-out adds them.
        " UNION \
         SELECT s.id, s.reblog_of_id FROM tag_follows tf \
           JOIN statuses_tags st ON st.tag_id = tf.tag_id \
           JOIN statuses s ON s.id = st.status_id \
           LEFT JOIN statuses o ON o.id = s.reblog_of_id \
         WHERE tf.account_id = $1 AND s.visibility = 'public' AND s.reblog_of_id IS NULL \
           AND NOT EXISTS (SELECT 1 FROM account_domain_blocks d \
                JOIN accounts da ON da.domain = d.domain \
                WHERE d.account_id = $1 AND da.id = s.account_id) AND ",
        feed_allows!("s", "o", "$1"),
        " AND ",
        home_allows!("s", "$1"),
        " ORDER BY id DESC LIMIT $2"
    ))
    .bind(me)
    .bind(FEED_MAX as i64)
    .fetch_all(state.db.primary())
    .await?;
    // Status 0 does not exist: it marks the feed as built, so that an account with an empty
    // home still gets fan-out instead of a rebuild at every read (Redis drops empty sets).
    let mut entries = vec![Entry {
        id: 0,
        reblog_of: None,
    }];
    entries.extend(
        rows.into_iter()
            .rev()
            .map(|(id, reblog_of)| Entry { id, reblog_of }),
    );
    run_insert(&state.redis, me, "reset", &entries).await?;
    Ok(())
}
