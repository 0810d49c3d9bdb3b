//! The process's one Redis subscriber connection, shared by every client.
//!
//! The hub says which channels its clients need (`Hub::channels`); a reconciler task makes
//! the connection's subscriptions match, in batches: a channel is subscribed when its first
//! client arrives and unsubscribed when its last one leaves. What the connection holds is
//! tracked here and forgotten whenever the connection may have been lost (a disconnection
//! push, a failed PING, or, on a standalone server, `CLIENT INFO` counting fewer
//! subscriptions than we believe), after which everything is subscribed again: clients stay
//! connected through a Redis restart or failover and simply resume.
//!
//! RESP3 (Redis 6+, Valkey): subscriptions live on an ordinary multiplexed connection whose
//! messages arrive as pushes, so one connection (standalone: a `ConnectionManager`; cluster:
//! the cluster client, one connection per node) serves subscribe, unsubscribe and PING.
//!
//! Standalone: ordinary channels (`SUBSCRIBE`; publishers `PUBLISH`). Cluster: sharded
//! channels (`SSUBSCRIBE`, see `shards`; publishers `SPUBLISH`, see `events::publish`), so
//! that an event only travels within its channel's shard; on a server without them (before
//! 7.0) both sides fall back to ordinary channels, which every node broadcasts to every
//! other, and try again after the next reconnection.

mod shards;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fedi_config::{RedisMode, ServerConfig};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{info, warn};

use crate::events::unknown_command;
use shards::Op;

/// How often an idle subscriber connection proves it is alive.
const PING_EVERY: Duration = Duration::from_secs(5);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// SUBSCRIBE arguments per command.
const BATCH: usize = 1000;

/// A message from Redis: `(channel, message)`.
pub type Incoming = (String, String);

/// What the connection is subscribed to, shared with the hub's waiters.
#[derive(Default)]
pub struct State {
    actual: Mutex<HashSet<String>>,
    /// Bumped (under `actual`'s lock) whenever the connection may have lost its
    /// subscriptions: a confirmation of a command sent under an older epoch is not trusted.
    epoch: AtomicU64,
    /// Shard channels the server unsubscribed us from (`sunsubscribe` pushes: their slot
    /// moved to another shard or failed over), to subscribe again where they live now.
    dropped: Mutex<HashSet<String>>,
    /// Bumped after every successful change, so that waiters look again.
    changed: watch::Sender<u64>,
    /// Wakes the reconciler: the wanted set changed or the connection was lost.
    wake: Notify,
    pub up: std::sync::atomic::AtomicBool,
}

impl State {
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn subscribed(&self, channel: &str) -> bool {
        self.actual.lock().unwrap().contains(channel)
    }

    pub fn count(&self) -> usize {
        self.actual.lock().unwrap().len()
    }

    /// Waits (at most `timeout`) until every channel is subscribed. A client is served even
    /// if Redis is down; this only lets a new stream start at a known point when it can.
    pub async fn wait_for(&self, channels: &[String], timeout: Duration) -> bool {
        let mut changed = self.changed.subscribe();
        let ready = async {
            loop {
                if channels.iter().all(|c| self.subscribed(c)) {
                    return;
                }
                if changed.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, ready).await.is_ok()
    }

    fn lost(&self) {
        {
            let mut actual = self.actual.lock().unwrap();
            self.epoch.fetch_add(1, Ordering::SeqCst);
            actual.clear();
        }
        self.up.store(false, Ordering::SeqCst);
        self.wake();
    }

    /// Records `channels` as subscribed, unless the connection was lost since `epoch`.
    fn confirmed(&self, epoch: u64, channels: &[String]) {
        {
            let mut actual = self.actual.lock().unwrap();
            if self.epoch.load(Ordering::SeqCst) != epoch {
                return;
            }
            actual.extend(channels.iter().cloned());
        }
        self.up.store(true, Ordering::SeqCst);
        self.changed.send_modify(|v| *v += 1);
    }

    /// The server unsubscribed us from the shard channel `channel`. Also the confirmation of
    /// our own `SUNSUBSCRIBE`: taking such a channel back costs one needless command at most.
    fn dropped(&self, channel: String) {
        self.dropped.lock().unwrap().insert(channel);
        self.wake();
    }
}

enum Connection {
    Standalone(ConnectionManager),
    Cluster {
        client: Box<ClusterClient>,
        conn: Option<ClusterConnection>,
        /// Whether the cluster has sharded channels: unknown (`None`) until a subscription
        /// tells, and asked again after the connection was lost, since the nodes that come
        /// back may run another version.
        sharded: Option<bool>,
    },
}

impl Connection {
    fn new(config: &ServerConfig, push: mpsc::UnboundedSender<PushInfo>) -> anyhow::Result<Self> {
        let invalid = crate::state::invalid_url;
        // RESP3: pushed messages arrive on the same connection as command replies.
        let infos: Vec<_> = crate::state::connection_infos(config)?
            .into_iter()
            .map(|info| {
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                info.set_redis_settings(settings)
            })
            .collect();
        Ok(match config.redis.mode {
            RedisMode::Standalone => {
                let info = infos
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("FEDI_REDIS_URL is empty"))?;
                let client = redis::Client::open(info).map_err(invalid)?;
                let manager = ConnectionManagerConfig::new()
                    .set_push_sender(push)
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(2));
                Connection::Standalone(
                    ConnectionManager::new_lazy_with_config(client, manager).map_err(invalid)?,
                )
            }
            RedisMode::Cluster => Connection::Cluster {
                client: Box::new(
                    ClusterClientBuilder::new(infos)
                        .use_protocol(ProtocolVersion::RESP3)
                        .push_sender(push)
                        .connection_timeout(COMMAND_TIMEOUT)
                        .response_timeout(COMMAND_TIMEOUT)
                        .build()
                        .map_err(invalid)?,
                ),
                conn: None,
                sharded: None,
            },
        })
    }

    async fn cluster(
        client: &ClusterClient,
        conn: &mut Option<ClusterConnection>,
    ) -> redis::RedisResult<ClusterConnection> {
        if let Some(c) = conn {
            return Ok(c.clone());
        }
        let c = client.get_async_connection().await?;
        *conn = Some(c.clone());
        Ok(c)
    }

    /// The connection may have been lost: on a cluster, find out again whether it has
    /// sharded channels.
    fn forget_mode(&mut self) {
        if let Connection::Cluster { sharded, .. } = self {
            *sharded = None;
        }
    }

    /// Subscribes `channels`, calling `done` with those the server confirmed (on a cluster,
    /// shard by shard as they answer).
    async fn subscribe(
        &mut self,
        channels: &[String],
        mut done: impl FnMut(&[String]),
    ) -> redis::RedisResult<()> {
        let (client, conn, sharded) = match self {
            Connection::Standalone(c) => {
                timed(c.subscribe(channels)).await?;
                done(channels);
                return Ok(());
            }
            Connection::Cluster {
                client,
                conn,
                sharded,
            } => (client, conn, sharded),
        };
        let c = timed(Self::cluster(client, conn)).await?;
        if *sharded != Some(false) {
            match shards::apply(&c, channels, Op::SSubscribe, &mut done).await {
                Err(e) if unknown_command(&e) => {
                    warn!(
                        "this Redis Cluster has no sharded pub/sub (Redis/Valkey 7.0+); \
                         events are broadcast to every node"
                    );
                    *sharded = Some(false);
                }
                result => {
                    if result.is_ok() {
                        *sharded = Some(true);
                    }
                    return result;
                }
            }
        }
        shards::apply(&c, channels, Op::Subscribe, done).await
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> redis::RedisResult<()> {
        match self {
            Connection::Standalone(c) => timed(c.unsubscribe(channels)).await,
            Connection::Cluster {
                client,
                conn,
                sharded,
            } => {
                let c = timed(Self::cluster(client, conn)).await?;
                let op = if *sharded == Some(false) {
                    Op::Unsubscribe
                } else {
                    Op::SUnsubscribe
                };
                shards::apply(&c, channels, op, |_| {}).await
            }
        }
    }

    /// PING; also the number of subscriptions the server holds for this very connection
    /// (`CLIENT INFO`'s `sub=`; on a cluster with sharded channels, `ssub=` summed over
    /// every master), which tells a silent loss apart: a reconnection on a standalone
    /// server, a node that failed over before the redis crate subscribed again.
    async fn check(&mut self) -> redis::RedisResult<Option<usize>> {
        match self {
            Connection::Standalone(c) => {
                redis::cmd("PING").query_async::<Value>(c).await?;
                // Redis 6.2+; an older server just skips this check.
                let info: Option<String> =
                    redis::cmd("CLIENT").arg("INFO").query_async(c).await.ok();
                Ok(info
                    .as_deref()
                    .unwrap_or_default()
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("sub="))
                    .and_then(|n| n.parse().ok()))
            }
            // A node that restarts drops its connection (a disconnection push), and one that
            // loses a slot says `sunsubscribe` for each of its channels; a master that died
            // leaves its channels to the redis crate, which subscribes them again on the
            // promoted replica once it sees the new slot map. Should that not happen, the
            // masters' counts come up short.
            Connection::Cluster {
                client,
                conn,
                sharded,
            } => {
                let mut c = Self::cluster(client, conn).await?;
                redis::cmd("PING").query_async::<Value>(&mut c).await?;
                if *sharded != Some(true) {
                    // Ordinary channels live on whichever node the crate picked: no sum.
                    return Ok(None);
                }
                let every_master =
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let replies = c
                    .route_command(redis::cmd("CLIENT").arg("INFO").clone(), every_master)
                    .await?;
                Ok(shard_subscriptions(replies))
            }
        }
    }
}

/// The sharded subscriptions (`ssub=`) of `CLIENT INFO` replies from every master, summed;
/// `None` if a reply lacks the field (a server before 7.0) or is an error.
fn shard_subscriptions(replies: Value) -> Option<usize> {
    let Value::Map(replies) = replies else {
        return None;
    };
    replies
        .into_iter()
        .map(|(_, info)| {
            let info = redis::from_redis_value::<String>(info).ok()?;
            info.split_whitespace()
                .find_map(|f| f.strip_prefix("ssub="))
                .and_then(|n| n.parse::<usize>().ok())
        })
        .sum()
}

/// Starts the subscriber: messages go to `incoming`; `wanted` says which channels the
/// clients need at this moment.
pub fn start(
    config: &ServerConfig,
    state: Arc<State>,
    wanted: impl Fn() -> HashSet<String> + Send + Sync + 'static,
    incoming: mpsc::UnboundedSender<Incoming>,
) -> anyhow::Result<()> {
    let (push_tx, push_rx) = mpsc::unbounded_channel();
    let conn = Connection::new(config, push_tx)?;
    tokio::spawn(read_pushes(state.clone(), push_rx, incoming));
    tokio::spawn(reconcile(state, conn, wanted));
    Ok(())
}

async fn read_pushes(
    state: Arc<State>,
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    incoming: mpsc::UnboundedSender<Incoming>,
) {
    while let Some(push) = pushes.recv().await {
        match push.kind {
            // `smessage`: a sharded channel's message, same shape.
            PushKind::Message | PushKind::SMessage => {
                let mut data = push.data.into_iter();
                let (Some(channel), Some(message)) = (data.next(), data.next()) else {
                    continue;
                };
                let (Ok(channel), Ok(message)) = (
                    redis::from_redis_value::<String>(channel),
                    redis::from_redis_value::<String>(message),
                ) else {
                    continue;
                };
                if incoming.send((channel, message)).is_err() {
                    return;
                }
            }
            PushKind::SUnsubscribe => {
                if let Some(Ok(channel)) = push
                    .data
                    .into_iter()
                    .next()
                    .map(redis::from_redis_value::<String>)
                {
                    state.dropped(channel);
                }
            }
            PushKind::Disconnection => {
                warn!("the Redis subscriber connection was lost; subscribing again");
                state.lost();
            }
            _ => {}
        }
    }
}

async fn reconcile(
    state: Arc<State>,
    mut conn: Connection,
    wanted: impl Fn() -> HashSet<String> + Send + Sync + 'static,
) {
    let mut backoff = Duration::from_millis(200);
    let mut failing = false;
    let mut epoch = state.epoch.load(Ordering::SeqCst);
    // The first pass checks at once, so that readiness is known right after start.
    let mut wait = Duration::ZERO;
    loop {
        let woken = tokio::select! {
            _ = state.wake.notified() => true,
            _ = tokio::time::sleep(wait) => false,
        };
        if !woken && !failing {
            match tokio::time::timeout(COMMAND_TIMEOUT, conn.check()).await {
                Ok(Ok(server_count)) => {
                    if server_count.is_some_and(|n| n < state.count()) {
                        warn!(
                            "the Redis server lost this connection's subscriptions; subscribing again"
                        );
                        state.lost();
                    } else {
                        state.up.store(true, Ordering::SeqCst);
                    }
                }
                _ => {
                    warn!("the Redis subscriber connection does not answer");
                    state.lost();
                }
            }
        }
        let now = state.epoch.load(Ordering::SeqCst);
        if now != epoch {
            conn.forget_mode();
            epoch = now;
        }
        match apply(&state, &mut conn, &wanted()).await {
            Ok(()) => {
                if failing {
                    info!(channels = state.count(), "Redis subscriptions restored");
                }
                failing = false;
                backoff = Duration::from_millis(200);
            }
            Err(e) => {
                if !failing {
                    warn!(error = %e, "cannot subscribe on Redis; retrying");
                }
                failing = true;
                state.up.store(false, Ordering::SeqCst);
                backoff = (backoff * 2).min(Duration::from_secs(3));
            }
        }
        wait = if failing { backoff } else { PING_EVERY };
    }
}

/// Makes the connection's subscriptions equal `wanted`.
async fn apply(
    state: &State,
    conn: &mut Connection,
    wanted: &HashSet<String>,
) -> redis::RedisResult<()> {
    let dropped = std::mem::take(&mut *state.dropped.lock().unwrap());
    let (add, remove): (Vec<String>, Vec<String>) = {
        let mut actual = state.actual.lock().unwrap();
        for c in &dropped {
            actual.remove(c);
        }
        (
            wanted.difference(&actual).cloned().collect(),
            actual.difference(wanted).cloned().collect(),
        )
    };
    for batch in add.chunks(BATCH) {
        let epoch = state.epoch.load(Ordering::SeqCst);
        let result = conn
            .subscribe(batch, |done| state.confirmed(epoch, done))
            .await;
        if state.epoch.load(Ordering::SeqCst) != epoch {
            // Lost meanwhile: the next pass subscribes everything again.
            return Err((redis::ErrorKind::Io, "connection lost while subscribing").into());
        }
        result?;
    }
    for batch in remove.chunks(BATCH) {
        // Forgotten first: if the command fails, the connection is gone and so is the
        // subscription, or the next check finds it.
        {
            let mut actual = state.actual.lock().unwrap();
            for c in batch {
                actual.remove(c);
            }
        }
        conn.unsubscribe(batch).await?;
    }
    Ok(())
}

async fn timed<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    tokio::time::timeout(COMMAND_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err((redis::ErrorKind::Io, "Redis did not answer in time").into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(node: &str, info: &str) -> (Value, Value) {
        (
            Value::BulkString(node.as_bytes().to_vec()),
            Value::VerbatimString {
                format: redis::VerbatimFormat::Text,
                text: info.into(),
            },
        )
    }

    #[test]
    fn sharded_subscriptions_are_summed_over_the_masters() {
        let info = |ssub: usize| {
            format!("id=7 addr=127.0.0.1:5 fd=8 name= sub=0 psub=0 ssub={ssub} multi=-1")
        };
        let all = Value::Map(vec![
            reply("127.0.0.1:7000", &info(3)),
            reply("127.0.0.1:7001", &info(0)),
            reply("127.0.0.1:7002", &info(5)),
        ]);
        assert_eq!(shard_subscriptions(all), Some(8));
        // A server without sharded channels, or a node without an answer: no figure.
        let old = Value::Map(vec![reply("127.0.0.1:7000", "id=7 sub=2 psub=0")]);
        assert_eq!(shard_subscriptions(old), None);
        let failed = Value::Map(vec![
            reply("127.0.0.1:7000", &info(3)),
            (Value::BulkString(b"127.0.0.1:7001".to_vec()), Value::Nil),
        ]);
        assert_eq!(shard_subscriptions(failed), None);
    }
}
