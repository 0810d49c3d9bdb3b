//! What the streaming tests share: streamer processes, WebSocket and SSE clients that read
//! Mastodon's frames, and publishing through `fedi_server::events`, as the other roles do.
#![allow(dead_code)] // each test binary uses a different subset

use std::process::Stdio;
use std::time::Duration;

use fedi_config::ServerConfig;
use fedi_server::events::{self, Event};
use fedi_server::state::AppState;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::common::*;

/// A `fedi-server streamer` on a free port, ready when `/api/v1/streaming/health` answers.
pub async fn start_streamer(db: &str, redis: &str, env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let child = server_command(db, redis)
        .arg("streamer")
        .env("FEDI_LISTEN", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        // FEDI_TEST_LOGS=1 shows the streamer's log, for debugging a test.
        .stdout(if std::env::var_os("FEDI_TEST_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("spawn fedi-server streamer");
    let server = Server {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
    };
    let health = format!("{}/api/v1/streaming/health", server.base_url);
    eventually(
        Duration::from_secs(20),
        "fedi-server streamer to answer its health URL",
        || async { reqwest::get(&health).await.ok() },
    )
    .await;
    server
}

/// The shared standalone Redis, or the cluster with `cluster`.
pub fn redis_env(cluster: bool) -> (String, Vec<(&'static str, &'static str)>) {
    if cluster {
        (
            service_env("FEDI_TEST_REDIS_CLUSTER_NODES"),
            vec![("FEDI_REDIS_MODE", "cluster")],
        )
    } else {
        (service_env("FEDI_TEST_REDIS_URL"), vec![])
    }
}

/// An `AppState` on `db` and `redis`, to publish as the api and the worker do.
pub fn app_state(db: &str, redis: &str, cluster: bool) -> AppState {
    app_state_of("test.example", db, redis, cluster)
}

/// The state of the instance `domain`: its events travel within that instance's namespace.
#[allow(dead_code)]
pub fn app_state_of(domain: &str, db: &str, redis: &str, cluster: bool) -> AppState {
    let (domain, db, redis) = (domain.to_string(), db.to_string(), redis.to_string());
    let config = ServerConfig::from_lookup(move |name| match name {
        "FEDI_DOMAIN" => Some(domain.clone()),
        "FEDI_DATABASE_URL" => Some(db.clone()),
        "FEDI_REDIS_URL" => Some(redis.clone()),
        "FEDI_REDIS_MODE" if cluster => Some("cluster".into()),
        _ => None,
    })
    .expect("test configuration");
    AppState::new(&config).expect("app state")
}

pub async fn publish(state: &AppState, channel: &str, event: &Event) {
    events::publish(state, channel, event)
        .await
        .expect("publish on Redis");
}

/// A status as the API renders it, with what filtering reads.
pub fn status(id: i64, author: i64, acct: &str, language: Option<&str>) -> Value {
    json!({
        "id": id.to_string(),
        "content": format!("<p>status {id}</p>"),
        "language": language,
        "account": {"id": author.to_string(), "acct": acct, "username": acct},
        "mentions": [],
        "reblog": null,
        "media_attachments": [],
    })
}

pub fn notification(id: i64, from: i64, acct: &str) -> Value {
    json!({
        "id": id.to_string(),
        "type": "mention",
        "account": {"id": from.to_string(), "acct": acct, "username": acct},
    })
}

/// A WebSocket client of the streaming API.
pub struct Ws {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `Sec-WebSocket-Protocol` the server selected.
    pub protocol: Option<String>,
}

/// How a test hands its token to the WebSocket.
pub enum Auth<'a> {
    Header(&'a str),
    Query(&'a str),
    Protocol(&'a str),
    None,
}

impl Ws {
    /// Connects to `/api/v1/streaming?<query>`; `Err(status)` when the upgrade is refused.
    pub async fn connect(base: &str, query: &str, auth: Auth<'_>) -> Result<Ws, u16> {
        let mut url = format!("{}/api/v1/streaming", base.replacen("http", "ws", 1));
        let mut query = query.to_string();
        if let Auth::Query(t) = auth {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&format!("access_token={t}"));
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        let mut request = url.into_client_request().unwrap();
        match auth {
            Auth::Header(t) => {
                request.headers_mut().insert(
                    "authorization",
                    HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
                );
            }
            Auth::Protocol(t) => {
                request
                    .headers_mut()
                    .insert("sec-websocket-protocol", HeaderValue::from_str(t).unwrap());
            }
            Auth::Query(_) | Auth::None => {}
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, response)) => Ok(Ws {
                socket,
                protocol: response
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|v| v.to_str().unwrap().to_string()),
            }),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("WebSocket connection failed: {e}"),
        }
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    pub async fn subscribe(&mut self, stream: &str, extra: Value) {
        let mut m = json!({"type": "subscribe", "stream": stream});
        if let Value::Object(extra) = extra {
            m.as_object_mut().unwrap().extend(extra);
        }
        self.send(m).await;
    }

    /// The next text frame (not a probe) as JSON within `timeout`; `None` on timeout.
    /// Panics when the connection closes (see `closed`).
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        self.frame(timeout, false).await
    }

    /// The next text frame, probe or not; `None` on timeout or when the connection ends.
    pub async fn any(&mut self, timeout: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(timeout, self.socket.next())
                .await
                .ok()??
            {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next probe (`probes`) or other frame.
    async fn frame(&mut self, timeout: Duration, probes: bool) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            match message {
                Some(Ok(Message::Text(t))) => {
                    let frame: Value = serde_json::from_str(&t).unwrap();
                    if (frame["event"] == PROBE) == probes {
                        return Some(frame);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    panic!("the streaming connection closed")
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Whether the server closes the connection within `timeout`.
    pub async fn closed(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// A server-sent events client.
pub struct Sse {
    pub response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// `GET path` with `token` as a bearer header; `Err((status, body))` when refused.
    pub async fn connect(
        base: &str,
        path: &str,
        token: Option<&str>,
    ) -> Result<Sse, (u16, String)> {
        let mut request = reqwest::Client::new().get(format!("{base}{path}"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.unwrap();
        if response.status() != 200 {
            let status = response.status().as_u16();
            return Err((status, response.text().await.unwrap()));
        }
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Ok(Sse {
            response,
            buffer: String::new(),
        })
    }

    /// The next `(event, data)` within `timeout`, skipping comments (`:)`, `:thump`) and
    /// probes.
    pub async fn next(&mut self, timeout: Duration) -> Option<(String, String)> {
        self.event(timeout, false).await
    }

    async fn event(&mut self, timeout: Duration, probes: bool) -> Option<(String, String)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(line_end) = self.buffer.find('\n') {
                // An event ends with a blank line; comments are single lines.
                if self.buffer.starts_with(':') {
                    self.buffer.drain(..=line_end);
                    continue;
                }
                let Some(end) = self.buffer.find("\n\n") else {
                    break;
                };
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = e.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push(d);
                    }
                }
                if (event == PROBE) == probes {
                    return Some((event, data.join("\n")));
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .expect("the event stream broke")?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Whether the server ends the stream within `timeout`.
    pub async fn ended(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return false,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Ok(Ok(Some(_))) => {}
            }
        }
    }
}

/// The event `until_subscribed` publishes: passed through like any event without an entity,
/// and skipped by the clients' `next`, so that stray copies never disturb a test.
pub const PROBE: &str = "test.probe";

/// Publishes probes on `channel` until `client` sees one (returned: its `stream` names the
/// subscription): a stream subscribes asynchronously, and pub/sub keeps nothing for late
/// subscribers.
pub async fn until_subscribed<C: Receiver>(
    client: &mut C,
    state: &AppState,
    channel: &str,
    timeout: Duration,
) -> C::Item {
    // Each call its own probes: copies of an earlier call's may still be in flight.
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nonce = format!(
        "probe-{}",
        NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let probe = Event {
        event: PROBE.into(),
        payload: nonce.clone(),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // A publish may fail while Redis restarts; the next round tries again.
        let _ = events::publish(state, channel, &probe).await;
        let round = tokio::time::Instant::now() + Duration::from_millis(250);
        while let Some(v) = client
            .probe(round.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            if C::payload(&v) == nonce {
                return v;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing arrived on {channel} within {timeout:?}"
        );
    }
}

pub trait Receiver {
    type Item;
    fn payload(item: &Self::Item) -> &str;
    /// The next probe within `timeout`.
    fn probe(&mut self, timeout: Duration)
    -> impl std::future::Future<Output = Option<Self::Item>>;
}

impl Receiver for Ws {
    type Item = Value;
    fn payload(item: &Value) -> &str {
        item["payload"].as_str().unwrap_or_default()
    }
    async fn probe(&mut self, timeout: Duration) -> Option<Value> {
        self.frame(timeout, true).await
    }
}

impl Receiver for Sse {
    type Item = (String, String);
    fn payload(item: &(String, String)) -> &str {
        &item.1
    }
    async fn probe(&mut self, timeout: Duration) -> Option<(String, String)> {
        self.event(timeout, true).await
    }
}
