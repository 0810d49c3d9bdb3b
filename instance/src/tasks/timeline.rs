//! The worker's timeline jobs: fan-out of a new, boosted or edited status into the feeds of
//! its author and local followers with the streaming events that go with it; removal of a
//! deleted status from those feeds; cleaning a feed after an unfollow, block or mute;
//! dropping the feeds of accounts that stopped reading them.
//!
//! Which follower gets what is Mastodon's `FeedManager#filter_from_home`, decided in one SQL
//! query per status (the `feed_allows!`, `home_allows!` and `follow_carries!` rules, which
//! the feed rebuild shares). List timelines are read from PostgreSQL (see `api::lists`), so
//! fan-out only publishes their `update` events.
//!
//! Events render the Status entity once, as an anonymous viewer would see it (Mastodon's
//! `anonymous_payload`); the streamer applies each client's blocks and mutes.

mod feeds;
mod listeners;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::api::entities::status::{Status, load_statuses_from};
use crate::api::timelines::feed::{
    self, Entry, Inserted, feed_allows, follow_carries, home_allows,
};
use crate::events::{self, Event, channel};
use crate::jobs::{self, JobError, Queue, Registry};
use crate::state::AppState;

pub const FAN_OUT: &str = "timeline.fan_out";
pub const REMOVE: &str = "timeline.remove_status";
pub const RELATION: &str = "timeline.relation";
pub const REBUILD: &str = "timeline.rebuild";
pub const CLEAN_FEEDS: &str = "timeline.clean_feeds";

/// How often feeds of accounts that stopped reading are dropped (Mastodon: daily).
const CLEAN_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// A fan-out still failing after this many tries (about 80 minutes of back-off) is stale.
const MAX_RETRIES: u32 = 8;

pub fn register(r: &mut Registry) {
    r.register(FAN_OUT, MAX_RETRIES, |state, args| async move {
        fan_out(&state, &jobs::args(args)?)
            .await
            .map_err(JobError::retry)
    });
    r.register(REMOVE, MAX_RETRIES, |state, args| async move {
        remove_status(&state, &jobs::args(args)?)
            .await
            .map_err(JobError::retry)
    });
    r.register(RELATION, MAX_RETRIES, |state, args| async move {
        relation_changed(&state, &jobs::args(args)?)
            .await
            .map_err(JobError::retry)
    });
    r.register(REBUILD, MAX_RETRIES, |state, args| async move {
        rebuild(&state, &jobs::args(args)?)
            .await
            .map_err(JobError::retry)
    });
    r.register(CLEAN_FEEDS, 3, |state, _| async move {
        clean_feeds(&state).await.map(drop).map_err(JobError::retry)
    });
    r.periodic(CLEAN_FEEDS, CLEAN_EVERY);
}

/// Queues a timeline job. The action that causes it has committed and must not fail now:
/// a failure is logged, and the feeds concerned miss the change until they are rebuilt.
async fn enqueue(state: &AppState, kind: &str, args: impl Serialize) {
    let args = serde_json::to_value(args).expect("job arguments serialize");
    if let Err(e) = jobs::enqueue(state, Queue::Default, kind, args).await {
        warn!(error = %e, kind, "cannot queue a timeline job");
    }
}

/// After status (or reblog) `id` was created.
pub async fn enqueue_fan_out(state: &AppState, id: i64) {
    let job = FanOut {
        status_id: id,
        update: false,
    };
    enqueue(state, FAN_OUT, job).await;
}

/// After status `id` was edited.
pub async fn enqueue_update(state: &AppState, id: i64) {
    let job = FanOut {
        status_id: id,
        update: true,
    };
    enqueue(state, FAN_OUT, job).await;
}

/// Before status `id` is deleted: what its removal job will need (see [`deletion`]). A
/// failure is logged; the feeds then keep a hole that reading skips.
pub async fn prepare_removal(state: &AppState, id: i64) -> Option<Deletion> {
    deletion(state, id).await.unwrap_or_else(|e| {
        warn!(error = %e, status = id, "cannot read what a deleted status leaves in feeds");
        None
    })
}

/// After the deletion committed.
pub async fn enqueue_removal(state: &AppState, deletion: Option<Deletion>) {
    if let Some(d) = deletion {
        enqueue(state, REMOVE, d).await;
    }
}

/// After `account_id` unfollowed, blocked or muted `target_id`.
pub async fn enqueue_relation(
    state: &AppState,
    relation: Relation,
    account_id: i64,
    target_id: i64,
) {
    let job = RelationChange {
        relation,
        account_id,
        target_id,
    };
    enqueue(state, RELATION, job).await;
}

/// Drops `account_id`'s feed, whose content changed wholesale, and queues its rebuild so
/// that the next read finds it ready (a read before that rebuilds it itself).
pub async fn refill(state: &AppState, account_id: i64) {
    feed::invalidate(state, account_id).await;
    enqueue(state, REBUILD, Rebuild { account_id }).await;
}

/// What a job needs to know about a status, read once.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Facts {
    account_id: i64,
    visibility: String,
    reblog_of_id: Option<i64>,
    in_reply_to_account_id: Option<i64>,
    local: bool,
    media: bool,
    tags: Vec<String>,
    /// Its author is silenced by the instance's domain blocks.
    silenced: bool,
}

impl Facts {
    fn entry(&self, id: i64) -> Entry {
        Entry {
            id,
            reblog_of: self.reblog_of_id,
        }
    }

    /// The public and hashtag channels the status goes to (Mastodon's
    /// `broadcast_to_public_streams!` and `broadcast_to_hashtag_streams!`): public originals
    /// only; replies to others stay out of the public streams, not out of the hashtag ones.
    fn public_channels(&self) -> Vec<String> {
        use channel::Scope;
        // Mastodon broadcasts nothing of a silenced account to the public streams.
        if self.visibility != "public" || self.reblog_of_id.is_some() || self.silenced {
            return Vec::new();
        }
        let mut channels = Vec::new();
        for tag in &self.tags {
            channels.push(channel::hashtag(tag, false));
            if self.local {
                channels.push(channel::hashtag(tag, true));
            }
        }
        let reply_to_other = self
            .in_reply_to_account_id
            .is_some_and(|a| a != self.account_id);
        if !reply_to_other {
            let scope = if self.local {
                Scope::Local
            } else {
                Scope::Remote
            };
            for media in [false, true] {
                if media && !self.media {
                    continue;
                }
                channels.push(channel::public(Scope::All, media));
                channels.push(channel::public(scope, media));
            }
        }
        channels
    }
}

async fn facts(state: &AppState, id: i64) -> Result<Option<Facts>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.account_id, s.visibility, s.reblog_of_id, s.in_reply_to_account_id, \
                a.domain IS NULL AS local, \
                cardinality(s.ordered_media_attachment_ids) > 0 AS media, \
                ARRAY(SELECT lower(t.name) FROM statuses_tags st JOIN tags t ON t.id = st.tag_id \
                      WHERE st.status_id = s.id ORDER BY 1) AS tags, \
                a.silenced_at IS NOT NULL AS silenced \
         FROM statuses s JOIN accounts a ON a.id = s.account_id WHERE s.id = $1",
    )
    .bind(id)
    .fetch_optional(state.db.primary())
    .await
}

/// One local follower of the author to whom the status may go, with where.
#[derive(Debug, sqlx::FromRow)]
struct Recipient {
    account_id: i64,
    /// Into their home feed (else their lists only).
    home: bool,
    /// Their lists holding the author that show this status.
    lists: Vec<i64>,
}

/// The author's local followers the status goes to. The list rule for replies is the list
/// timeline's (`api::lists::timeline`), so that a list stream shows what its REST timeline
/// would. Whether the author is in any list at all is asked once (an uncorrelated
/// subquery, run before the rows): for an author in none, most of them, that spares a
/// list lookup per follower, a third of the query for a thousand followers.
/// Boosts of statuses from a domain the follower blocks stay out, as Mastodon's
/// `filter_from_home` keeps them out (the booster is followed, the original's author is not).
async fn recipients(state: &AppState, id: i64) -> Result<Vec<Recipient>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT f.account_id, (",
        home_allows!("s", "f.account_id"),
        ") AS home, \
         CASE WHEN EXISTS (SELECT 1 FROM statuses ls \
                JOIN list_accounts lsa ON lsa.account_id = ls.account_id WHERE ls.id = $1) \
         THEN ARRAY(SELECT l.id FROM lists l JOIN list_accounts la ON la.list_id = l.id \
               WHERE l.account_id = f.account_id AND la.account_id = s.account_id \
                 AND (s.in_reply_to_account_id IS NULL \
                      OR s.in_reply_to_account_id IN (s.account_id, l.account_id) \
                      OR (l.replies_policy = 'followed' AND EXISTS (SELECT 1 FROM follows lf \
                            WHERE lf.account_id = l.account_id \
                              AND lf.target_account_id = s.in_reply_to_account_id)) \
                      OR (l.replies_policy = 'list' AND EXISTS (SELECT 1 FROM list_accounts lr \
                            WHERE lr.list_id = l.id \
                              AND lr.account_id = s.in_reply_to_account_id))) \
               ORDER BY l.id) ELSE '{}' END AS lists \
         FROM statuses s \
           JOIN follows f ON f.target_account_id = s.account_id \
           JOIN users u ON u.account_id = f.account_id \
           LEFT JOIN statuses o ON o.id = s.reblog_of_id \
         WHERE s.id = $1 \
           AND NOT EXISTS (SELECT 1 FROM account_domain_blocks d \
                JOIN accounts da ON da.domain = d.domain \
                WHERE d.account_id = f.account_id AND da.id = o.account_id) AND ",
        follow_carries!("f", "s"),
        " AND ",
        feed_allows!("s", "o", "f.account_id")
    ))
    .bind(id)
    .fetch_all(state.db.primary())
    .await
}

/// Local accounts following one of the hashtags of public original `id` (not its author),
/// with the checks of Mastodon's `filter_from_tags?`: the home feed's blocks, mutes and
/// exclusive lists, and the reader's domain blocks.
async fn tag_followers(state: &AppState, id: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(concat!(
        "SELECT DISTINCT tf.account_id FROM statuses s \
           JOIN statuses_tags st ON st.status_id = s.id \
           JOIN tag_follows tf ON tf.tag_id = st.tag_id \
           JOIN users u ON u.account_id = tf.account_id \
           LEFT JOIN statuses o ON o.id = s.reblog_of_id \
         WHERE s.id = $1 AND s.visibility = 'public' AND s.reblog_of_id IS NULL \
           AND tf.account_id <> s.account_id \
           AND NOT EXISTS (SELECT 1 FROM account_domain_blocks d \
                JOIN accounts da ON da.domain = d.domain \
                WHERE d.account_id = tf.account_id AND da.id = s.account_id) AND ",
        feed_allows!("s", "o", "tf.account_id"),
        " AND ",
        home_allows!("s", "tf.account_id")
    ))
    .bind(id)
    .fetch_all(state.db.primary())
    .await
}

/// The status as an anonymous viewer sees it, rendered from the author's point of view (who
/// may see it whatever its visibility) without the author's own marks.
async fn render(state: &AppState, id: i64, author: i64) -> Result<Option<Status>, sqlx::Error> {
    let mut found = load_statuses_from(state.db.primary(), state, &[id], Some(author)).await?;
    Ok(found.pop().map(anonymous))
}

fn anonymous(mut s: Status) -> Status {
    s.favourited = None;
    s.reblogged = None;
    s.muted = None;
    s.bookmarked = None;
    s.pinned = None;
    s.application = None;
    // Rendered as the author, it would carry the author's own filter matches.
    s.filtered = Vec::new();
    s.reblog = s.reblog.map(|r| Box::new(anonymous(*r)));
    s
}

async fn publish(state: &AppState, channel: &str, event: &Event) {
    if let Err(e) = events::publish(state, channel, event).await {
        warn!(error = %e, channel, "cannot publish a streaming event");
    }
}

async fn publish_all(state: &AppState, channels: &[String], event: &Event) {
    let failed = events::publish_many(state, channels, event).await;
    if failed > 0 {
        warn!(
            failed,
            event = event.event,
            "cannot publish streaming events"
        );
    }
}

/// Job arguments of a fan-out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanOut {
    pub status_id: i64,
    /// An edit: no feed changes, `status.update` events where the status was sent.
    #[serde(default)]
    pub update: bool,
}

/// Fans status `job.status_id` out. Safe to run again: feeds take an entry once, and an
/// `update` event goes out only where this run added the entry (or the feed is not built).
pub async fn fan_out(state: &AppState, job: &FanOut) -> anyhow::Result<()> {
    let id = job.status_id;
    // Deleted before the job ran: the deletion job has nothing of it to clean either.
    let Some(facts) = facts(state, id).await? else {
        return Ok(());
    };
    let Some(status) = render(state, id, facts.account_id).await? else {
        return Ok(());
    };
    let event = if job.update {
        Event::status_update(&status)
    } else {
        Event::update(&status)
    };
    let followers = recipients(state, id).await?;
    // The author's own feed, when they are local (a remote author has none).
    let mut homes: Vec<i64> = if facts.local {
        vec![facts.account_id]
    } else {
        Vec::new()
    };
    homes.extend(followers.iter().filter(|r| r.home).map(|r| r.account_id));
    // Followers of its hashtags (Mastodon's `deliver_to_hashtag_followers!`), once each.
    for account in tag_followers(state, id).await? {
        if !homes.contains(&account) {
            homes.push(account);
        }
    }
    let mut channels: Vec<String> = if job.update {
        homes.iter().map(|a| channel::user(*a)).collect()
    } else {
        // A failed feed write fails the job, which retries: writes already done are
        // idempotent.
        let done = feeds::insert(&state.redis, &homes, facts.entry(id)).await?;
        homes
            .iter()
            .zip(done)
            .filter(|(_, done)| matches!(done, Inserted::Added | Inserted::NoFeed))
            .map(|(account, _)| channel::user(*account))
            .collect()
    };
    let lists: BTreeSet<i64> = followers.iter().flat_map(|r| r.lists.clone()).collect();
    channels.extend(lists.into_iter().map(channel::list));
    // Home and list streams only where a client listens, as Mastodon; the public ones
    // always (they are few, and Mastodon does not ask either).
    let mut channels = listeners::retain_listened(&state.redis, channels).await;
    channels.extend(facts.public_channels());
    publish_all(state, &channels, &event).await;
    // Mastodon's `deliver_to_conversation!`: direct statuses also go to the conversations of
    // their local participants, once (an edit changes none).
    if facts.visibility == "direct" && facts.reblog_of_id.is_none() && !job.update {
        crate::api::conversations::record(state, id).await?;
    }
    Ok(())
}

/// Job arguments of a deletion: what the rows said before they went (the job runs after
/// they are gone).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deletion {
    pub status: Entry,
    pub account_id: i64,
    /// The public and hashtag channels that carried it.
    pub channels: Vec<String>,
    /// Reblogs of it, deleted with it: (reblog, its author).
    pub reblogs: Vec<(i64, i64)>,
}

/// Reads what the deletion job of status `id` needs; call it before deleting the rows.
pub async fn deletion(state: &AppState, id: i64) -> anyhow::Result<Option<Deletion>> {
    let Some(facts) = facts(state, id).await? else {
        return Ok(None);
    };
    let reblogs: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, account_id FROM statuses WHERE reblog_of_id = $1")
            .bind(id)
            .fetch_all(state.db.primary())
            .await?;
    Ok(Some(Deletion {
        status: facts.entry(id),
        account_id: facts.account_id,
        channels: facts.public_channels(),
        reblogs,
    }))
}

/// Removes a deleted status and its reblogs from every feed they were fanned out to, and
/// sends `delete` to the streams that may show them. Reading filters unknown ids anyway;
/// this keeps feeds from filling with holes and clients from showing the status.
pub async fn remove_status(state: &AppState, d: &Deletion) -> anyhow::Result<()> {
    let mut authors = vec![d.account_id];
    authors.extend(d.reblogs.iter().map(|(_, a)| *a));
    let feeds: Vec<i64> = sqlx::query_scalar(
        "SELECT account_id FROM users WHERE account_id = ANY($1) \
         UNION \
         SELECT f.account_id FROM follows f JOIN users u ON u.account_id = f.account_id \
         WHERE f.target_account_id = ANY($1)",
    )
    .bind(&authors)
    .fetch_all(state.db.primary())
    .await?;
    let mut entries: Vec<Entry> = d
        .reblogs
        .iter()
        .map(|(id, _)| Entry {
            id: *id,
            reblog_of: Some(d.status.id),
        })
        .collect();
    entries.push(d.status);
    let gone = Event::delete(d.status.id);
    let removed = feeds::remove(&state.redis, &feeds, &entries).await?;
    let lists: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT list_id FROM list_accounts WHERE account_id = $1 ORDER BY 1",
    )
    .bind(d.account_id)
    .fetch_all(state.db.primary())
    .await?;
    // The status itself may be on screen without being in a feed (a reblog of it, a feed
    // not built): its delete goes to every follower.
    let mut channels: Vec<String> = feeds.iter().map(|a| channel::user(*a)).collect();
    channels.extend(lists.into_iter().map(channel::list));
    channels.extend(d.channels.iter().cloned());
    publish_all(state, &channels, &gone).await;
    for (account, removed) in feeds.iter().zip(removed) {
        for id in removed.into_iter().filter(|id| *id != d.status.id) {
            publish(state, &channel::user(*account), &Event::delete(id)).await;
        }
    }
    Ok(())
}

/// A relationship that takes statuses out of a home feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Unfollow,
    Block,
    Mute,
}

/// Job arguments: `account` started `relation` towards `target`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelationChange {
    pub relation: Relation,
    pub account_id: i64,
    pub target_id: i64,
}

/// Mastodon's `UnmergeWorker` (unfollow), `BlockWorker` and `MuteWorker`: after a block,
/// the blocker's feed loses everything of or about the target, and the target's feed (they
/// no longer follow the blocker) loses the blocker's statuses.
pub async fn relation_changed(state: &AppState, job: &RelationChange) -> anyhow::Result<()> {
    let (me, target) = (job.account_id, job.target_id);
    match job.relation {
        Relation::Unfollow => {
            feed::unmerge(state, me, target).await?;
        }
        Relation::Block | Relation::Mute => {
            for id in feed::clear_from_home(state, me, target).await? {
                publish(state, &channel::user(me), &Event::delete(id)).await;
            }
            if job.relation == Relation::Block {
                feed::unmerge(state, target, me).await?;
            }
        }
    }
    Ok(())
}

/// Job arguments of a feed rebuild.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rebuild {
    pub account_id: i64,
}

/// Rebuilds a home feed from PostgreSQL (a read rebuilds a missing one too; this job warms
/// it ahead of the read after the feed's content changed wholesale).
pub async fn rebuild(state: &AppState, job: &Rebuild) -> anyhow::Result<()> {
    feed::rebuild(state, job.account_id).await
}

/// Drops the home feeds of accounts that have not read them for a week (Mastodon's
/// `FeedCleanupScheduler`): fan-out then leaves them alone, and Redis holds feeds of active
/// accounts only. Returns how many were dropped.
pub async fn clean_feeds(state: &AppState) -> anyhow::Result<usize> {
    const BATCH: usize = 1000;
    let mut dropped = 0;
    loop {
        let n = feed::drop_inactive(&state.redis, BATCH).await?;
        dropped += n;
        if n < BATCH {
            return Ok(dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(visibility: &str) -> Facts {
        Facts {
            account_id: 1,
            visibility: visibility.into(),
            reblog_of_id: None,
            in_reply_to_account_id: None,
            local: true,
            media: false,
            tags: vec!["rust".into()],
            silenced: false,
        }
    }

    #[test]
    fn silenced_accounts_reach_no_public_stream() {
        let silenced = Facts {
            silenced: true,
            ..facts("public")
        };
        assert!(silenced.public_channels().is_empty());
    }

    #[test]
    fn public_originals_go_to_the_public_and_hashtag_streams_as_mastodon_sends_them() {
        assert_eq!(
            facts("public").public_channels(),
            [
                "timeline:hashtag:rust",
                "timeline:hashtag:rust:local",
                "timeline:public",
                "timeline:public:local",
            ]
        );
        let with_media = Facts {
            media: true,
            local: false,
            ..facts("public")
        };
        assert_eq!(
            with_media.public_channels(),
            [
                "timeline:hashtag:rust",
                "timeline:public",
                "timeline:public:remote",
                "timeline:public:media",
                "timeline:public:remote:media",
            ]
        );
        // A reply to someone else stays out of the public streams, not the hashtag ones.
        let reply = Facts {
            in_reply_to_account_id: Some(2),
            ..facts("public")
        };
        assert_eq!(
            reply.public_channels(),
            ["timeline:hashtag:rust", "timeline:hashtag:rust:local"]
        );
        let self_reply = Facts {
            in_reply_to_account_id: Some(1),
            ..facts("public")
        };
        assert_eq!(self_reply.public_channels().len(), 4);
        for quiet in ["unlisted", "private", "direct"] {
            assert!(facts(quiet).public_channels().is_empty(), "{quiet}");
        }
        let reblog = Facts {
            reblog_of_id: Some(9),
            ..facts("public")
        };
        assert!(reblog.public_channels().is_empty());
    }
}
