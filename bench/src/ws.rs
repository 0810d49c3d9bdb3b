//! Streaming fan-out: N WebSocket clients on one hashtag stream of the streamer, events
//! published on Redis as the worker publishes them, the time from PUBLISH to each client's
//! frame. The hashtag is the run's own: other users of the shared Redis publish on
//! `timeline:public`, and our events must reach no one else.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use fedi_server::events::{self, Event, channel};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::outcome::{Outcome, Target};
use crate::procs::{self, Meter};
use crate::seed::app_state;
use crate::stats;

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

    let base = Instant::now();
    // Nanoseconds after `base` at which event n was published (0: not yet).
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..a.events).map(|_| AtomicU64::new(0)).collect());
    // Microseconds from publish to receipt of event n at client i, in slot i * events + n
    // (0: not received): written where the frame arrives, with no message or wake-up per
    // delivery (a channel to a collector cost the clients a cross-thread wake-up per frame,
    // on the cores the streamer needs).
    let slots: Arc<Vec<AtomicU64>> = Arc::new(
        (0..a.connections as u64 * a.events)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let delivered = Arc::new(AtomicU64::new(0));
    let (ready_tx, mut ready) = mpsc::unbounded_channel::<()>();

    let connecting = Instant::now();
    let sockets: Vec<_> = futures::stream::iter(0..a.connections)
        .map(|i| connect(&url, &tokens[i % tokens.len()]))
        // Each upgrade reads the token from PostgreSQL: more at once than the streamer's
        // pool holds only times out, as a burst of reconnecting clients would.
        .buffer_unordered(16)
        .collect()
        .await;
    let connected_in = connecting.elapsed();
    let closed = Arc::new(AtomicU64::new(0));
    // How the first connection that ended did end, for the notes.
    let ending: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let mut refused = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let mut socket = match socket {
            Ok(s) => s,
            Err(e) => {
                refused.push(e);
                continue;
            }
        };
        let (ready_tx, sent) = (ready_tx.clone(), sent.clone());
        let (slots, delivered, events) = (slots.clone(), delivered.clone(), a.events as usize);
        let (closed, ending) = (closed.clone(), ending.clone());
        tokio::spawn(async move {
            let mut probed = false;
            let end = loop {
                let message = match socket.next().await {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => break format!("error: {e}"),
                    None => break "end of stream".to_string(),
                };
                let text = match message {
                    Message::Text(text) => text,
                    Message::Close(frame) => break format!("close frame: {frame:?}"),
                    _ => continue,
                };
                let at = base.elapsed().as_nanos() as u64;
                if let Some(n) = sequence(&text) {
                    let published = sent.get(n).map_or(0, |s| s.load(Ordering::Acquire));
                    if published > 0 && n < events {
                        // At least 1 µs, so that a received event never reads as missing;
                        // a duplicate delivery counts once.
                        let us = ((at - published) / 1000).max(1);
                        if slots[i * events + n].swap(us, Ordering::Relaxed) == 0 {
                            delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                } else if !probed && text.contains(PROBE) {
                    probed = true;
                    let _ = ready_tx.send(());
                }
            };
            closed.fetch_add(1, Ordering::Relaxed);
            ending.lock().unwrap().get_or_insert(format!(
                "{end} ({:.1} s after the start)",
                base.elapsed().as_secs_f64()
            ));
        });
    }
    drop(ready_tx);
    let clients = a.connections - refused.len();
    println!(
        "{clients} WebSocket clients connected in {connected_in:?}, {} refused{}",
        refused.len(),
        refused
            .first()
            .map_or(String::new(), |e| format!(" (first: {e:#})"))
    );
    ensure!(clients > 0, "no WebSocket client could connect");

    // Probes until every client is subscribed: a client counts from its first probe.
    let probe = Event {
        event: PROBE.into(),
        payload: "probe".into(),
    };
    let mut subscribed = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while subscribed < clients && Instant::now() < deadline {
        // Redis is busy while the streamer subscribes for thousands of new connections: a
        // probe that times out is simply sent again.
        if let Err(e) = events::publish(&state, &public, &probe).await {
            eprintln!("probe not published ({e}); again");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        while ready.try_recv().is_ok() {
            subscribed += 1;
        }
    }
    // Clients that never got a probe stay in the count: what they miss are errors.
    let unsubscribed = clients - subscribed;
    ensure!(subscribed > 0, "no client got a probe in 2 minutes");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let meter = Meter::start(&roles)?;
    let profile_for = (a.events * a.interval_ms / 1000).clamp(1, 10);
    let hotspot = tokio::spawn(procs::hotspot(
        procs::pid_of(&roles, "streamer"),
        profile_for,
    ));
    let started = Instant::now();
    for n in 0..a.events {
        let status = json!({
            "id": (n + 1).to_string(),
            "content": format!("<p>{MARK}{n}-</p>"),
            "language": "en",
            "account": {"id": a.author_id.to_string(), "acct": "bench0", "username": "bench0"},
            "mentions": [],
            "tags": [{"name": tag}],
            "reblog": null,
            "media_attachments": [],
        });
        let event = Event::update(&status);
        sent[n as usize].store(base.elapsed().as_nanos() as u64, Ordering::Release);
        events::publish(&state, &public, &event).await?;
        tokio::time::sleep(Duration::from_millis(a.interval_ms)).await;
    }
    let expected = clients as u64 * a.events;
    // Until every delivery arrived, or none for 30 s.
    let (mut seen, mut quiet_since) = (0, Instant::now());
    loop {
        let now = delivered.load(Ordering::Relaxed);
        if now >= expected || quiet_since.elapsed() > Duration::from_secs(30) {
            break;
        }
        if now != seen {
            (seen, quiet_since) = (now, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let duration = started.elapsed().as_secs_f64();
    let samples: Vec<u64> = slots
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|&us| us > 0)
        .collect();
    let delivered = samples.len() as u64;
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
                "{} events {} ms apart, each to every client; connected in {:.1} s; {} refused, \
             {unsubscribed} never got a probe, {} closed by the server; errors are missed \
             deliveries; the clients run on the same 2 cores as the streamer; CPU per 1,000 \
             deliveries",
                a.events,
                a.interval_ms,
                connected_in.as_secs_f64(),
                refused.len(),
                closed.load(Ordering::Relaxed),
            ),
            format!("streamer metrics: {counters}"),
            format!(
                "first connection ended: {}",
                ending.lock().unwrap().as_deref().unwrap_or("none")
            ),
        ],
    }
    .write(&a.out)
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

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client on `url` with `token`, retried as a real client would after a refusal.
async fn connect(url: &str, token: &str) -> anyhow::Result<Socket> {
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
            Ok((socket, _)) => return Ok(socket),
            Err(e) if attempt >= 3 => return Err(e.into()),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(attempt)).await;
            }
        }
    }
}

/// Ten thousand clients share the cores with the streamer: tungstenite's default read
/// buffer (128 KiB, zeroed before every read) would cost the clients more than the frames
/// they read, and count as the streamer's latency. Events are well under 4 KiB; a larger
/// frame still arrives whole, the buffer grows for it.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
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
