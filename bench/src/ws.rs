//! Streaming fan-out: N WebSocket clients on one hashtag stream of the streamer, events
//! published on Redis as the worker publishes them, the time from PUBLISH to each client's
//! frame. The hashtag is the run's own: other users of the shared Redis publish on
//! `timeline:public`, and our events must reach no one else.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use fedi_server::events::{self, Event, channel};
use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::outcome::{Outcome, Target};
use crate::procs::{self, Meter};
use crate::seed::app_state;
use crate::stats;
use crate::ws_readers::{self, Seen, Shared};

const PROBE: &str = "fedi-bench.probe";
/// Marks an event's sequence number in the status content, found without parsing JSON: the
/// clients share the CPU with the streamer, and parsing would count as latency.
const MARK: &str = "bench-event-";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The streamer, as http://host:port.
    #[arg(long)]
    streamer: String,
    #[arg(long, env = "FEDI_DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "FEDI_REDIS_URL")]
    redis_url: String,
    #[arg(long, env = "FEDI_DOMAIN")]
    domain: String,
    /// Tokens, one a line; client i uses token i modulo their number.
    #[arg(long)]
    tokens: PathBuf,
    /// The account the events' statuses are attributed to.
    #[arg(long)]
    author_id: i64,
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    #[arg(long, default_value_t = 20)]
    events: u64,
    /// Pause between events, so that each fan-out is measured on its own.
    #[arg(long, default_value_t = 250)]
    interval_ms: u64,
    #[arg(long)]
    out: PathBuf,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let roles = procs::roles()?;
    let tokens: Vec<String> = std::fs::read_to_string(&a.tokens)?
        .lines()
        .map(str::to_string)
        .collect();
    ensure!(!tokens.is_empty(), "no tokens in {}", a.tokens.display());
    let state = app_state(&a.database_url, &a.redis_url, &a.domain)?;
    let tag = format!("fedibench{}", std::process::id());
    let public = channel::hashtag(&tag, false);
    let url = format!(
        "{}/api/v1/streaming?stream=hashtag&tag={tag}",
        a.streamer.replacen("http", "ws", 1)
    );

    let connecting = Instant::now();
    let sockets: Vec<_> = futures::stream::iter(0..a.connections)
        .map(|i| connect(&url, &tokens[i % tokens.len()]))
        // Each upgrade reads the token from PostgreSQL: more at once than the streamer's
        // pool holds only times out, as a burst of reconnecting clients would.
        .buffer_unordered(16)
        .collect()
        .await;
    let connected_in = connecting.elapsed();
    let (mut connected, mut refused) = (Vec::new(), Vec::new());
    for socket in sockets {
        match socket {
            Ok(s) => connected.push(s),
            Err(e) => refused.push(e),
        }
    }
    let clients = connected.len();
    println!(
        "{clients} WebSocket clients connected in {connected_in:?}, {} refused{}",
        refused.len(),
        refused
            .first()
            .map_or(String::new(), |e| format!(" (first: {e:#})"))
    );
    ensure!(clients > 0, "no WebSocket client could connect");
    let shared = Arc::new(Shared::new(clients, a.events as usize));
    let (stop_readers, readers) = ws_readers::start(connected, shared.clone(), classify)?;

    // Probes until every client is subscribed: a client counts from its first probe.
    let probe = Event {
        event: PROBE.into(),
        payload: "probe".into(),
    };
    let subscribed = || shared.probed.load(Ordering::Relaxed) as usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while subscribed() < clients && Instant::now() < deadline {
        // Redis is busy while the streamer subscribes for thousands of new connections: a
        // probe that times out is simply sent again.
        if let Err(e) = events::publish(&state, &public, &probe).await {
            eprintln!("probe not published ({e}); again");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Clients that never got a probe stay in the count: what they miss are errors.
    let unsubscribed = clients - subscribed();
    ensure!(subscribed() > 0, "no client got a probe in 2 minutes");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The profiler first: attaching to the streamer's threads stalls them for a moment,
    // which is no part of a delivery.
    let profile_for = (a.events * a.interval_ms / 1000 + 1).clamp(1, 10);
    let hotspot = tokio::spawn(procs::hotspot(
        procs::pid_of(&roles, "streamer"),
        profile_for,
    ));
    // One status unmeasured: the probes are not filtered, so the first status is where
    // the filter's statement gets prepared, once per process.
    let status = |id: u64, content: String| {
        Event::update(&json!({
            "id": id.to_string(),
            "content": content,
            "language": "en",
            "account": {"id": a.author_id.to_string(), "acct": "bench0", "username": "bench0"},
            "mentions": [],
            "tags": [{"name": tag}],
            "reblog": null,
            "media_attachments": [],
        }))
    };
    events::publish(&state, &public, &status(1, "<p>warm-up</p>".into())).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let meter = Meter::start(&roles)?;
    let started = Instant::now();
    for n in 0..a.events {
        let event = status(n + 2, format!("<p>{MARK}{n}-</p>"));
        shared.sent[n as usize].store(shared.base.elapsed().as_nanos() as u64, Ordering::Release);
        events::publish(&state, &public, &event).await?;
        tokio::time::sleep(Duration::from_millis(a.interval_ms)).await;
    }
    let expected = clients as u64 * a.events;
    // Until every delivery arrived, or none for 30 s.
    let (mut seen, mut quiet_since) = (0, Instant::now());
    loop {
        let now = shared.delivered.load(Ordering::Relaxed);
        if now >= expected || quiet_since.elapsed() > Duration::from_secs(30) {
            break;
        }
        if now != seen {
            (seen, quiet_since) = (now, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let duration = started.elapsed().as_secs_f64();
    stop_readers.store(true, Ordering::Relaxed);
    readers
        .join()
        .map_err(|_| anyhow::anyhow!("the reading thread panicked"))?;
    let samples: Vec<u64> = shared
        .slots
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|&us| us > 0)
        .collect();
    let delivered = samples.len() as u64;
    let spread = spread(&shared, clients);
    let roles_usage = meter.finish(delivered)?;
    let latency = stats::latency(samples).context("no event reached any client")?;
    let counters = streamer_counters(&a.streamer).await;
    let missing = expected - delivered + refused.len() as u64 * a.events;
    Outcome {
        order: 50,
        name: format!("streaming fan-out, {} WebSocket connections", a.connections),
        requests: delivered,
        duration_s: duration,
        per_second: delivered as f64 / duration,
        unit: "deliveries/s".into(),
        latency_ms: Some(latency),
        errors: missing,
        roles: roles_usage,
        hotspot: Some(format!("streamer: {}", hotspot.await?)),
        target: Some(Target {
            text: "p99 < 100 ms at 10,000 connections".into(),
            met: latency.p99 < 100.0 && a.connections >= 10_000 && missing == 0,
        }),
        notes: vec![
            format!(
                "{} events {} ms apart, each to every client, after one unmeasured; the clients \
             read on one thread that polls every millisecond (a receipt stamped up to 1 ms \
             late); connected in {:.1} s; {} refused, \
             {unsubscribed} never got a probe, {} closed by the server; errors are missed \
             deliveries; the clients run on the same 2 cores as the streamer; CPU per 1,000 \
             deliveries",
                a.events,
                a.interval_ms,
                connected_in.as_secs_f64(),
                refused.len(),
                shared.closed.load(Ordering::Relaxed),
            ),
            spread,
            format!("streamer metrics: {counters}"),
            format!(
                "first connection ended: {}",
                shared.ending.lock().unwrap().as_deref().unwrap_or("none")
            ),
        ],
    }
    .write(&a.out)
}

/// How each event spread: when its first and its last client got it. The first says what
/// a message costs before any delivery (Redis, the filter query); the distance to the last,
/// what the writes to every socket cost.
fn spread(shared: &Shared, clients: usize) -> String {
    let events = shared.events;
    let (mut first, mut last) = (Vec::new(), Vec::new());
    for n in 0..events {
        let got: Vec<u64> = (0..clients)
            .map(|i| shared.slots[i * events + n].load(Ordering::Relaxed))
            .filter(|&us| us > 0)
            .collect();
        if let (Some(min), Some(max)) = (got.iter().min(), got.iter().max()) {
            first.push(*min);
            last.push(*max);
        }
    }
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).map_or(0.0, |&us| us as f64 / 1000.0)
    };
    let worst = |v: &[u64]| v.iter().max().map_or(0.0, |&us| us as f64 / 1000.0);
    format!(
        "per event: the first client reached after {:.1} ms (median; worst {:.1}), the last \
         after {:.1} ms (median; worst {:.1})",
        median(&mut first),
        worst(&first),
        median(&mut last),
        worst(&last)
    )
}

/// The streamer's own account of slow clients it closed and messages it filtered.
async fn streamer_counters(streamer: &str) -> String {
    let text = match reqwest::get(format!("{streamer}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => return format!("unavailable ({e})"),
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.contains("slow_clients_closed") || l.contains("messages_filtered"))
        .collect();
    lines.join(", ")
}

/// A client on `url` with `token`, retried as a real client would after a refusal: the
/// socket once the handshake is done, for the reading thread (`ws_readers`).
async fn connect(url: &str, token: &str) -> anyhow::Result<std::net::TcpStream> {
    let mut attempt = 0;
    loop {
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        match tokio_tungstenite::connect_async_with_config(request, Some(client_config()), false)
            .await
        {
            Ok((socket, _)) => {
                // The server sends nothing before the first probe: no frame is left in
                // tungstenite's buffer.
                let MaybeTlsStream::Plain(tcp) = socket.into_inner() else {
                    anyhow::bail!("a TLS stream where plain TCP was asked for");
                };
                return Ok(tcp.into_std()?);
            }
            Err(e) if attempt >= 3 => return Err(e.into()),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(attempt)).await;
            }
        }
    }
}

/// Only the handshake reads through tungstenite: a small buffer for the 101 answer.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
}

/// What a frame is to the run: a benchmark event, a probe, or something else.
fn classify(frame: &str) -> Seen {
    match sequence(frame) {
        Some(n) => Seen::Event(n),
        None if frame.contains(PROBE) => Seen::Probe,
        None => Seen::Other,
    }
}

/// The sequence number of a benchmark event in a frame, `None` for anything else.
fn sequence(frame: &str) -> Option<usize> {
    let rest = &frame[frame.find(MARK)? + MARK.len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_found_in_frames() {
        let frame = r#"{"event":"update","payload":"{\"content\":\"<p>bench-event-17-</p>\"}"}"#;
        assert_eq!(sequence(frame), Some(17));
        assert_eq!(sequence(r#"{"event":"update","payload":"{}"}"#), None);
    }
}
