//! Prometheus metrics of the streamer, served at `/metrics` (the streamer role only).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportType {
    /// `websocket` or `eventsource`, as Mastodon labels them.
    pub r#type: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub connections: Family<TransportType, Gauge>,
    /// Channels this process is subscribed to on Redis.
    pub redis_channels: Gauge,
    /// 1 while the subscriber connection answers, 0 while it reconnects.
    pub redis_up: Gauge,
    pub received: Counter,
    pub sent: Counter,
    /// Deliveries withheld by a block, mute, domain block or language choice.
    pub filtered: Counter,
    /// Connections closed because they could not keep up.
    pub slow_closed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Registry::with_prefix("fedi_streaming"),
            connections: Family::default(),
            redis_channels: Gauge::default(),
            redis_up: Gauge::default(),
            received: Counter::default(),
            sent: Counter::default(),
            filtered: Counter::default(),
            slow_closed: Counter::default(),
        };
        let mut registry = m.registry;
        registry.register(
            "connections",
            "Open streaming connections, by transport",
            m.connections.clone(),
        );
        registry.register(
            "redis_channels",
            "Redis channels subscribed by this process",
            m.redis_channels.clone(),
        );
        registry.register(
            "redis_up",
            "Whether the Redis subscriber connection works",
            m.redis_up.clone(),
        );
        registry.register(
            "messages_received",
            "Messages received from Redis",
            m.received.clone(),
        );
        registry.register("messages_sent", "Messages sent to clients", m.sent.clone());
        registry.register(
            "messages_filtered",
            "Messages withheld from a client by its blocks, mutes or languages",
            m.filtered.clone(),
        );
        registry.register(
            "slow_clients_closed",
            "Connections closed because their client did not keep up",
            m.slow_closed.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn connections(&self, transport: &'static str) -> Gauge {
        self.connections
            .get_or_create(&TransportType { r#type: transport })
            .clone()
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
