//! The hub: which connection listens to which Redis channel, and the delivery of every
//! message to the connections allowed to see it.
//!
//! Messages are filtered concurrently (a database round trip each) but delivered in the
//! order Redis sent them, so that a `delete` never overtakes the `update` it follows.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use indexmap::IndexMap;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, warn};

use super::filter;
use super::metrics::Metrics;
use super::pubsub::{self, Incoming};
use super::schema::Probe;
use super::streams::Plan;
use super::viewer::{self, Viewer};
use crate::events::{Event, channel};
use crate::state::AppState;

/// Messages a connection may have waiting; a client further behind is closed (it catches up
/// through the REST timelines when it reconnects) rather than held in memory.
const OUTBOX: usize = 512;
/// Messages filtered at the same time.
const CONCURRENT_FILTERING: usize = 64;
/// How long a new stream waits for Redis to confirm its subscription before it starts
/// anyway.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);
const REVALIDATE_EVERY: Duration = Duration::from_secs(15);
/// Mastodon's `subscribed:` heartbeat: refreshed every 6 minutes, kept 18.
const SUBSCRIBED_EVERY: Duration = Duration::from_secs(6 * 60);
const SUBSCRIBED_TTL: Duration = Duration::from_secs(18 * 60);

pub struct Hub {
    state: AppState,
    schema: Probe,
    /// By channel, then by `Subscription::id`: a connection that goes removes its entries
    /// by key, not by a scan of everyone on the channel (ten thousand clients leaving one
    /// channel at once cost 50 million comparisons under this lock, holding up
    /// deliveries). An IndexMap, not a HashMap: a delivery walks the subscriptions in the
    /// order they came, as the Vec before it did; in hash order the same fan-out cost the
    /// streamer ~15% more CPU (sockets and tasks visited out of their allocation order).
    registry: Mutex<HashMap<String, IndexMap<u64, Arc<Subscription>>>>,
    live: Mutex<HashMap<u64, Live>>,
    next_id: AtomicU64,
    pub pubsub: Arc<pubsub::State>,
    pub metrics: Metrics,
}

struct Live {
    token_id: i64,
    closer: Arc<Notify>,
}

/// One stream of one connection (or its system channel).
pub struct Subscription {
    /// Unique in the process (the hub's counter, shared with connection ids).
    id: u64,
    viewer: Arc<Viewer>,
    kind: Kind,
    outbox: mpsc::Sender<Frame>,
    closer: Arc<Notify>,
    /// Set (for the whole connection) when its outbox overflowed: it is counted and told
    /// to close once, however many messages it misses meanwhile.
    slow: Arc<AtomicBool>,
}

enum Kind {
    /// A client's stream: `name` is its `stream` field, already JSON.
    Stream { name: Arc<str>, public: bool },
    /// `timeline:access_token:<id>`: a `kill` closes the connection.
    System,
}

/// A message on its way to one client, rendered once per message and stream name for all
/// the clients that receive it. Both forms are reference-counted buffers that the
/// transports send as they are: a delivery to ten thousand clients copies no text and
/// allocates nothing but the socket's own frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// `{"stream":[...],"event":"...","payload":"..."}`; without `payload` when there is
    /// none (`filters_changed`), as Mastodon's `JSON.stringify` leaves it out.
    pub websocket: Utf8Bytes,
    /// `event: NAME\ndata: PAYLOAD\n\n`.
    pub sse: Bytes,
}

impl Frame {
    /// The frames of one message for the stream named `stream` (JSON), sharing `sse`.
    fn render(stream: &str, event: &str, payload: &str, sse: Bytes) -> Frame {
        let event = serde_json::to_string(event).expect("a string serializes");
        let websocket = if payload.is_empty() {
            format!(r#"{{"stream":{stream},"event":{event}}}"#)
        } else {
            let payload = serde_json::to_string(payload).expect("a string serializes");
            format!(r#"{{"stream":{stream},"event":{event},"payload":{payload}}}"#)
        };
        Frame {
            websocket: websocket.into(),
            sse,
        }
    }

    fn sse(event: &str, payload: &str) -> String {
        let mut out = format!("event: {event}\n");
        for line in payload.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        out
    }
}

enum Action {
    Send(Arc<Subscription>, Frame),
    Close(Arc<Subscription>),
}

impl Hub {
    /// Starts the Redis subscriber and the hub's tasks (inside a Tokio runtime).
    pub fn start(state: AppState) -> anyhow::Result<Arc<Hub>> {
        let hub = Arc::new(Hub {
            state: state.clone(),
            schema: Probe::default(),
            registry: Mutex::default(),
            live: Mutex::default(),
            next_id: AtomicU64::new(1),
            pubsub: Arc::default(),
            metrics: Metrics::default(),
        });
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let weak = Arc::downgrade(&hub);
        pubsub::start(
            &state.config,
            hub.pubsub.clone(),
            move || weak.upgrade().map(|h| h.channels()).unwrap_or_default(),
            incoming_tx,
        )?;
        tokio::spawn(deliver(hub.clone(), incoming_rx));
        tokio::spawn(revalidate(Arc::downgrade(&hub)));
        tokio::spawn(announce(Arc::downgrade(&hub)));
        Ok(hub)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Every channel some connection of this process listens to.
    pub fn channels(&self) -> HashSet<String> {
        self.registry.lock().unwrap().keys().cloned().collect()
    }

    /// A new connection of `viewer`, listening to its token's system channel.
    pub fn open(self: &Arc<Self>, viewer: Viewer, transport: &'static str) -> Connection {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let closer = Arc::new(Notify::new());
        let (outbox, inbox) = mpsc::channel(OUTBOX);
        let viewer = Arc::new(viewer);
        self.live.lock().unwrap().insert(
            id,
            Live {
                token_id: viewer.token_id,
                closer: closer.clone(),
            },
        );
        let slow = Arc::new(AtomicBool::new(false));
        let system = Arc::new(Subscription {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            viewer: viewer.clone(),
            kind: Kind::System,
            outbox: outbox.clone(),
            closer: closer.clone(),
            slow: slow.clone(),
        });
        let channels = self.on_redis(&[channel::access_token(viewer.token_id)]);
        if self.register(&channels, &system) {
            self.pubsub.wake();
        }
        let gauge = self.metrics.connections(transport);
        gauge.inc();
        let mut subscriptions = HashMap::new();
        subscriptions.insert(String::new(), (channels, system));
        Connection {
            hub: self.clone(),
            id,
            viewer,
            outbox,
            inbox,
            closer,
            slow,
            subscriptions,
            gauge,
        }
    }

    /// Whether `list` belongs to `account_id`.
    pub async fn owns_list(&self, account_id: i64, list: i64) -> Result<bool, sqlx::Error> {
        let owner: Option<i64> = sqlx::query_scalar("SELECT account_id FROM lists WHERE id = $1")
            .bind(list)
            .fetch_optional(self.state.db.primary())
            .await?;
        Ok(owner == Some(account_id))
    }

    /// Resolves a token with what filtering needs.
    pub async fn viewer(&self, token: &viewer::Token) -> Result<Viewer, viewer::Refused> {
        let schema = self
            .schema
            .get(&self.state)
            .await
            .map_err(|e| viewer::Refused::Internal(e.into()))?;
        viewer::resolve(&self.state, &schema, token).await
    }

    /// Closes every connection (shutdown): their handlers end, so the server can stop.
    pub fn close_all(&self) {
        for live in self.live.lock().unwrap().values() {
            live.closer.notify_one();
        }
    }

    /// Adds `sub` to `channels`; whether one of them had no listener before.
    fn register(&self, channels: &[String], sub: &Arc<Subscription>) -> bool {
        let mut registry = self.registry.lock().unwrap();
        let mut new = false;
        for c in channels {
            let subs = registry.entry(c.clone()).or_default();
            new |= subs.is_empty();
            subs.insert(sub.id, sub.clone());
        }
        new
    }

    /// Removes `sub` from `channels`; whether one of them has no listener left.
    fn unregister(&self, channels: &[String], sub: &Arc<Subscription>) -> bool {
        let mut registry = self.registry.lock().unwrap();
        let mut emptied = false;
        for c in channels {
            if let Some(subs) = registry.get_mut(c) {
                subs.swap_remove(&sub.id);
                if subs.is_empty() {
                    registry.remove(c);
                    emptied = true;
                }
            }
        }
        emptied
    }

    /// Decides who receives one message from Redis.
    async fn prepare(&self, channel: String, message: String) -> Vec<Action> {
        self.metrics.received.inc();
        let subs = match self.registry.lock().unwrap().get(&channel) {
            Some(subs) => subs.values().cloned().collect::<Vec<_>>(),
            None => return Vec::new(),
        };
        let Ok(event) = serde_json::from_str::<Event>(&message) else {
            warn!(
                channel,
                "a message on Redis is not a streaming event; dropped"
            );
            return Vec::new();
        };
        let mut actions = Vec::new();
        let (system, streams): (Vec<_>, Vec<_>) = subs
            .into_iter()
            .partition(|s| matches!(s.kind, Kind::System));
        if event.event == "kill" {
            actions.extend(system.into_iter().map(Action::Close));
        }
        if streams.is_empty() {
            return actions;
        }
        // Which subscriptions filter this event: see `filter::applies`.
        let filtered = |s: &Subscription| match &s.kind {
            Kind::Stream { public, .. } => filter::applies(&event.event, *public),
            Kind::System => false,
        };
        let facts = if streams.iter().any(|s| filtered(s)) {
            match filter::facts(&event.event, &event.payload) {
                Some(f) => Some(f),
                None => {
                    warn!(
                        channel,
                        event = event.event,
                        "an event without the entity it names; dropped"
                    );
                    return actions;
                }
            }
        } else {
            None
        };
        // The author's own statuses are never filtered for the author.
        let own = |viewer: &Viewer| {
            facts
                .as_ref()
                .is_some_and(|f| !f.notification && f.author == viewer.account_id)
        };
        let excluded = match &facts {
            None => HashSet::new(),
            Some(f) => {
                // Sorted and deduplicated in place: a tree of ten thousand nodes per event
                // cost more than the sort.
                let mut viewers: Vec<i64> = streams
                    .iter()
                    .filter(|s| filtered(s) && !own(&s.viewer))
                    .map(|s| s.viewer.account_id)
                    .collect();
                viewers.sort_unstable();
                viewers.dedup();
                let result = match self.schema.get(&self.state).await {
                    Ok(schema) => filter::excluded(&self.state, schema, &viewers, f).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(set) => set,
                    Err(e) => {
                        // Closed, not open: a block must hold even while the database
                        // does not answer.
                        warn!(channel, error = %e, "cannot check blocks and mutes; event withheld");
                        return actions;
                    }
                }
            }
        };
        let sse = Bytes::from(Frame::sse(&event.event, &event.payload));
        // Clients of one channel mostly share a stream name: one rendering each.
        let mut rendered: HashMap<Arc<str>, Frame> = HashMap::new();
        for s in streams {
            let Kind::Stream {
                name: stream,
                public,
            } = &s.kind
            else {
                continue;
            };
            if let Some(f) = &facts
                && filtered(&s)
                && !own(&s.viewer)
            {
                let hidden = excluded.contains(&s.viewer.account_id)
                    || (*public
                        && !filter::language_allowed(
                            s.viewer.languages.as_deref(),
                            f.language.as_deref(),
                        ));
                if hidden {
                    self.metrics.filtered.inc();
                    continue;
                }
            }
            let frame = rendered
                .entry(stream.clone())
                .or_insert_with(|| Frame::render(stream, &event.event, &event.payload, sse.clone()))
                .clone();
            actions.push(Action::Send(s, frame));
        }
        actions
    }

    fn act(&self, action: Action) {
        match action {
            Action::Send(sub, frame) => match sub.outbox.try_send(frame) {
                Ok(()) => {
                    self.metrics.sent.inc();
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !sub.slow.swap(true, Ordering::Relaxed) {
                        self.metrics.slow_closed.inc();
                        debug!("a streaming client does not keep up; closing it");
                        sub.closer.notify_one();
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            },
            Action::Close(sub) => sub.closer.notify_one(),
        }
    }

    /// The channels on Redis of stream channels (`events::channel` names): within the
    /// instance's namespace, as publishers send them (see `redis_keys`).
    fn on_redis(&self, channels: &[String]) -> Vec<String> {
        let keys = self.state.redis.keys();
        channels.iter().map(|c| keys.channel(c)).collect()
    }

    /// Marks `channels` (as on Redis) as listened to (`subscribed:<channel>`), for
    /// publishers.
    async fn announce(&self, channels: impl IntoIterator<Item = String>) {
        let keys = self.state.redis.keys();
        for c in channels {
            let Some(name) = keys.channel_name(&c) else {
                continue;
            };
            if name.starts_with("timeline:access_token:") {
                continue;
            }
            let key = keys.key(&channel::subscribed_key(name));
            if let Err(e) = self
                .state
                .redis
                .set_ex(&key, "1", SUBSCRIBED_TTL, false)
                .await
            {
                debug!(error = %e, "cannot refresh a subscribed: key");
                return;
            }
        }
    }
}

async fn deliver(hub: Arc<Hub>, incoming: mpsc::UnboundedReceiver<Incoming>) {
    let messages = futures::stream::unfold(incoming, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    });
    messages
        .map(|(channel, message)| {
            let hub = hub.clone();
            async move { hub.prepare(channel, message).await }
        })
        .buffered(CONCURRENT_FILTERING)
        .for_each(|actions| {
            for a in actions {
                hub.act(a);
            }
            std::future::ready(())
        })
        .await;
}

/// Closes the connections whose token no longer grants access.
async fn revalidate(hub: std::sync::Weak<Hub>) {
    loop {
        // Periodically, and at once when PostgreSQL announces a token change
        // (`auth::token_changes`): a password reset from the admin CLI or a suspension in
        // SQL publishes no kill event.
        let Some(tokens) = hub.upgrade().map(|h| h.state.tokens.clone()) else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(REVALIDATE_EVERY) => {}
            _ = tokens.changed() => {}
        }
        let Some(hub) = hub.upgrade() else { return };
        let tokens: Vec<i64> = {
            let live = hub.live.lock().unwrap();
            live.values()
                .map(|l| l.token_id)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        if tokens.is_empty() {
            continue;
        }
        match viewer::still_valid(&hub.state, &tokens).await {
            Ok(valid) => {
                let valid: HashSet<i64> = valid.into_iter().collect();
                for live in hub.live.lock().unwrap().values() {
                    if !valid.contains(&live.token_id) {
                        live.closer.notify_one();
                    }
                }
            }
            Err(e) => warn!(error = %e, "cannot re-validate streaming tokens"),
        }
    }
}

/// Refreshes the `subscribed:` keys of every channel listened to.
async fn announce(hub: std::sync::Weak<Hub>) {
    loop {
        tokio::time::sleep(SUBSCRIBED_EVERY).await;
        let Some(hub) = hub.upgrade() else { return };
        let channels = hub.channels();
        hub.announce(channels).await;
    }
}

/// A client connection: its streams, and the queue of messages for it. Dropping it
/// unsubscribes everything.
pub struct Connection {
    hub: Arc<Hub>,
    id: u64,
    pub viewer: Arc<Viewer>,
    outbox: mpsc::Sender<Frame>,
    pub inbox: mpsc::Receiver<Frame>,
    /// Notified when the connection must close: its token was revoked, it fell behind, or
    /// the server stops.
    pub closer: Arc<Notify>,
    slow: Arc<AtomicBool>,
    /// By `Plan::key` (the system channel under ""): the channels and the subscription.
    subscriptions: HashMap<String, (Vec<String>, Arc<Subscription>)>,
    gauge: Gauge,
}

impl Connection {
    /// Starts `plan`; false if this connection already has it.
    pub async fn subscribe(&mut self, plan: &Plan) -> bool {
        let key = plan.key();
        if self.subscriptions.contains_key(&key) {
            return false;
        }
        let name = serde_json::to_string(&plan.name).expect("strings serialize");
        let sub = Arc::new(Subscription {
            id: self.hub.next_id.fetch_add(1, Ordering::Relaxed),
            viewer: self.viewer.clone(),
            kind: Kind::Stream {
                name: name.into(),
                public: plan.public,
            },
            outbox: self.outbox.clone(),
            closer: self.closer.clone(),
            slow: self.slow.clone(),
        });
        let channels = self.hub.on_redis(&plan.channels);
        let new = self.hub.register(&channels, &sub);
        self.subscriptions.insert(key, (channels.clone(), sub));
        if new {
            self.hub.pubsub.wake();
            let hub = self.hub.clone();
            let channels = channels.clone();
            tokio::spawn(async move { hub.announce(channels).await });
        }
        self.hub.pubsub.wait_for(&channels, SUBSCRIBE_WAIT).await;
        true
    }

    pub fn unsubscribe(&mut self, plan: &Plan) {
        if let Some((channels, sub)) = self.subscriptions.remove(&plan.key())
            && self.hub.unregister(&channels, &sub)
        {
            self.hub.pubsub.wake();
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut emptied = false;
        for (channels, sub) in self.subscriptions.values() {
            emptied |= self.hub.unregister(channels, sub);
        }
        if emptied {
            self.hub.pubsub.wake();
        }
        self.hub.live.lock().unwrap().remove(&self.id);
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(event: &str, payload: &str) -> Frame {
        Frame::render(
            r#"["hashtag","Rust"]"#,
            event,
            payload,
            Frame::sse(event, payload).into(),
        )
    }

    #[test]
    fn frames_are_mastodons() {
        let f = frame("update", r#"{"id":"1","content":"<p>a\nb</p>"}"#);
        let ws: serde_json::Value = serde_json::from_str(f.websocket.as_str()).unwrap();
        assert_eq!(ws["stream"], serde_json::json!(["hashtag", "Rust"]));
        assert_eq!(ws["event"], "update");
        // The payload stays a string holding JSON.
        assert_eq!(
            ws["payload"].as_str().unwrap(),
            r#"{"id":"1","content":"<p>a\nb</p>"}"#
        );
        assert_eq!(&*frame("delete", "42").sse, b"event: delete\ndata: 42\n\n");
        let changed = frame("filters_changed", "");
        let ws: serde_json::Value = serde_json::from_str(changed.websocket.as_str()).unwrap();
        assert!(ws.get("payload").is_none(), "{ws}");
        assert_eq!(&*changed.sse, b"event: filters_changed\ndata: \n\n");
    }
}
