//! Events for the streaming API. The role that causes an event (the api for notifications,
//! the worker's fan-out for new and deleted statuses) publishes it on Redis pub/sub; every
//! streamer replica relays the channels its clients subscribed to. Channel names and the
//! message shape are Mastodon's, so that the two sides agree without sharing anything else
//! (on Redis each channel carries the instance's prefix, see `redis_keys`):
//!
//! - `timeline:<account id>`: that account's home stream (`update`, `delete`,
//!   `status.update`, `filters_changed`);
//! - `timeline:<account id>:notifications`: its notifications (`notification`);
//! - `timeline:public`, `timeline:public:local`, `timeline:public:remote` and their
//!   `:media` forms; `timeline:hashtag:<lowercased tag>` and `...:local`;
//!   `timeline:list:<list id>`; `timeline:direct:<account id>` (`conversation`).
//!
//! A message is `{"event": "<name>", "payload": "<payload>"}`, where the payload is
//! already the string the client receives: a JSON-encoded entity, or the bare id of a
//! deleted status, exactly as Mastodon sends them.
//!
//! Delivery is best effort, as on Mastodon: a client that was not connected catches up
//! through the REST timelines. A failed publish is logged by the caller and never fails the
//! action that caused it.

use serde::{Deserialize, Serialize};

use crate::state::{AppState, Redis};

/// An event as it travels on Redis and, re-encoded, to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub event: String,
    pub payload: String,
}

impl Event {
    /// A new or boosted status (payload: the Status entity).
    pub fn update(status: &impl Serialize) -> Self {
        Self::entity("update", status)
    }

    /// An edited status (payload: the Status entity after the edit).
    pub fn status_update(status: &impl Serialize) -> Self {
        Self::entity("status.update", status)
    }

    /// A notification (payload: the Notification entity).
    pub fn notification(notification: &impl Serialize) -> Self {
        Self::entity("notification", notification)
    }

    /// A conversation changed (payload: the Conversation entity).
    pub fn conversation(conversation: &impl Serialize) -> Self {
        Self::entity("conversation", conversation)
    }

    /// A deleted status: the payload is its id alone, not JSON, as Mastodon sends it.
    pub fn delete(status_id: i64) -> Self {
        Self {
            event: "delete".into(),
            payload: status_id.to_string(),
        }
    }

    /// Closes every streaming connection of one access token (published on
    /// `channel::access_token` when the token is revoked). No payload.
    pub fn kill() -> Self {
        Self {
            event: "kill".into(),
            payload: String::new(),
        }
    }

    /// The account's filters changed (no payload).
    pub fn filters_changed() -> Self {
        Self {
            event: "filters_changed".into(),
            payload: String::new(),
        }
    }

    fn entity(event: &str, entity: &impl Serialize) -> Self {
        Self {
            event: event.into(),
            // Entities are plain data: serializing them cannot fail.
            payload: serde_json::to_string(entity).expect("entity serializes"),
        }
    }
}

/// Channel names, in one place for the publishers and the streamer.
pub mod channel {
    pub fn user(account_id: i64) -> String {
        format!("timeline:{account_id}")
    }

    pub fn notifications(account_id: i64) -> String {
        format!("timeline:{account_id}:notifications")
    }

    /// `timeline:public`, `timeline:public:local`, `timeline:public:remote`, with
    /// `:media` appended for statuses with attachments.
    pub fn public(scope: Scope, only_media: bool) -> String {
        let mut c = String::from("timeline:public");
        c.push_str(scope.suffix());
        if only_media {
            c.push_str(":media");
        }
        c
    }

    /// `timeline:hashtag:<tag>` (all) or `...:local`; tags are compared lowercased.
    pub fn hashtag(tag: &str, local_only: bool) -> String {
        let mut c = format!("timeline:hashtag:{}", tag.to_lowercase());
        if local_only {
            c.push_str(":local");
        }
        c
    }

    pub fn list(list_id: i64) -> String {
        format!("timeline:list:{list_id}")
    }

    pub fn direct(account_id: i64) -> String {
        format!("timeline:direct:{account_id}")
    }

    /// `timeline:access_token:<token id>`: system messages for the connections of one
    /// token (`kill` when it is revoked). Clients never see this channel.
    pub fn access_token(token_id: i64) -> String {
        format!("timeline:access_token:{token_id}")
    }

    /// `subscribed:<channel>` (within the namespace, as every key): a key the streamer keeps alive (18 minutes, refreshed every
    /// 6, as Mastodon's) while a client listens to `channel`, so that a publisher may skip
    /// rendering events nobody can receive. Absent means "nobody listening right now".
    pub fn subscribed_key(channel: &str) -> String {
        format!("subscribed:{channel}")
    }

    /// Which part of the federated timeline a public channel carries.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Scope {
        All,
        Local,
        Remote,
    }

    impl Scope {
        fn suffix(self) -> &'static str {
            match self {
                Scope::All => "",
                Scope::Local => ":local",
                Scope::Remote => ":remote",
            }
        }
    }
}

/// Publishes `event` on `channel` (a name from [`channel`]), within the instance's
/// namespace (see `redis_keys`): `PUBLISH` on a standalone server; `SPUBLISH` on a
/// cluster, where the channel is sharded (see `streaming::pubsub`), so that the message
/// reaches the nodes of its slot's shard only instead of being broadcast to every node.
pub async fn publish(state: &AppState, channel: &str, event: &Event) -> redis::RedisResult<()> {
    let message = serde_json::to_string(event).expect("event serializes");
    publish_message(state, channel, &message).await
}

/// Publishes `event` on every channel of `channels`, serialized once: on a standalone
/// server in one pipeline, on a cluster (where each channel may live on another shard) a
/// few at a time. A fan-out sends one event to a thousand home channels; one round trip and
/// one serialization each would cost the worker more than the feed writes. Returns how many
/// channels failed (the caller logs it: delivery is best effort).
pub async fn publish_many(state: &AppState, channels: &[String], event: &Event) -> usize {
    use futures::StreamExt;
    /// Channels per pipeline (standalone) or in flight (cluster): enough to hide round
    /// trips, few enough not to hold the shared connection for long.
    const BATCH: usize = 256;
    if channels.is_empty() {
        return 0;
    }
    let message = serde_json::to_string(event).expect("event serializes");
    let keys = state.redis.keys();
    match &*state.redis {
        Redis::Standalone { .. } => {
            let mut failed = 0;
            for chunk in channels.chunks(BATCH) {
                let mut pipe = redis::pipe();
                for c in chunk {
                    pipe.cmd("PUBLISH")
                        .arg(keys.channel(c))
                        .arg(&message)
                        .ignore();
                }
                if state.redis.pipeline::<()>(&pipe).await.is_err() {
                    failed += chunk.len();
                }
            }
            failed
        }
        Redis::Cluster { .. } => {
            let message = &message;
            futures::stream::iter(0..channels.len())
                .map(|i| publish_message(state, &channels[i], message))
                .buffer_unordered(BATCH)
                .filter(|r| std::future::ready(r.is_err()))
                .count()
                .await
        }
    }
}

async fn publish_message(state: &AppState, channel: &str, message: &str) -> redis::RedisResult<()> {
    let channel = &state.redis.keys().channel(channel);
    if let Redis::Cluster { .. } = &*state.redis {
        let cluster = legacy::Cluster::of(state);
        if !legacy::known(cluster) {
            let mut cmd = redis::cmd("SPUBLISH");
            cmd.arg(channel).arg(message);
            match state.redis.query::<i64>(&cmd).await {
                Err(e) if unknown_command(&e) => legacy::found(cluster),
                result => return result.map(drop),
            }
        }
    }
    state.redis.publish(channel, message).await
}

/// Whether Redis refused a command it does not know (sharded pub/sub before 7.0).
pub(crate) fn unknown_command(e: &redis::RedisError) -> bool {
    e.to_string().contains("unknown command")
}

/// Clusters without sharded pub/sub, as `SPUBLISH` found: remembered for a while so that an
/// old cluster does not cost two commands per event, then asked again, so that publishers
/// follow an upgraded cluster as the streamer does once it reconnects. Keyed by the
/// cluster's configuration, since one process (a test) may talk to several.
mod legacy {
    use std::collections::HashMap;
    use std::hash::{DefaultHasher, Hash, Hasher};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use crate::state::AppState;

    const RECHECK: Duration = Duration::from_secs(60);
    static UNTIL: Mutex<Option<HashMap<Cluster, Instant>>> = Mutex::new(None);

    /// A hash of the seed URLs (never the URLs: they may hold a password).
    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Cluster(u64);

    impl Cluster {
        pub fn of(state: &AppState) -> Self {
            let mut h = DefaultHasher::new();
            for url in &state.config.redis.urls {
                url.expose().hash(&mut h);
            }
            Cluster(h.finish())
        }
    }

    pub fn known(cluster: Cluster) -> bool {
        let until = UNTIL.lock().unwrap();
        until
            .as_ref()
            .and_then(|m| m.get(&cluster))
            .is_some_and(|t| Instant::now() < *t)
    }

    pub fn found(cluster: Cluster) {
        tracing::warn!(
            "this Redis Cluster has no sharded pub/sub (Redis/Valkey 7.0+); events are \
             broadcast to every node"
        );
        UNTIL
            .lock()
            .unwrap()
            .get_or_insert_default()
            .insert(cluster, Instant::now() + RECHECK);
    }
}

#[cfg(test)]
mod tests {
    use super::channel::{self, Scope};
    use super::*;

    #[test]
    fn channel_names_are_mastodons() {
        assert_eq!(channel::user(7), "timeline:7");
        assert_eq!(channel::notifications(7), "timeline:7:notifications");
        assert_eq!(channel::public(Scope::All, false), "timeline:public");
        assert_eq!(
            channel::public(Scope::Local, true),
            "timeline:public:local:media"
        );
        assert_eq!(
            channel::public(Scope::Remote, false),
            "timeline:public:remote"
        );
        assert_eq!(
            channel::hashtag("Rust", true),
            "timeline:hashtag:rust:local"
        );
        assert_eq!(channel::list(3), "timeline:list:3");
        assert_eq!(channel::direct(9), "timeline:direct:9");
        assert_eq!(channel::access_token(5), "timeline:access_token:5");
        assert_eq!(
            channel::subscribed_key("timeline:7"),
            "subscribed:timeline:7"
        );
    }

    #[test]
    fn a_delete_carries_the_bare_id_and_an_update_the_encoded_entity() {
        assert_eq!(Event::delete(42).payload, "42");
        let update = Event::update(&serde_json::json!({"id": "1", "content": "<p>hi</p>"}));
        assert_eq!(update.event, "update");
        let back: serde_json::Value = serde_json::from_str(&update.payload).unwrap();
        assert_eq!(back["id"], "1");
    }
}
