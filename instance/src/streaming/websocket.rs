//! `GET /api/v1/streaming` upgraded to a WebSocket: one connection, any number of streams,
//! added and removed with `{"type": "subscribe" | "unsubscribe", "stream": ...}` messages
//! (or one given as `?stream=` on the URL). Refusals of a stream arrive as
//! `{"error": "...", "status": N}` messages; the connection stays open.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::hub::Frame;
use super::streams::Request;
use super::{Streamer, error, start_stream, stream_plan};

/// Mastodon pings every 30 s and drops a client that did not answer the previous ping.
const PING_EVERY: Duration = Duration::from_secs(30);
/// A client that takes longer than this to accept one frame is gone or stalled: without a
/// bound, a peer that stops reading would hold its connection (and its queue) forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// What tungstenite reads from the socket at a time, and the capacity it zeroes before
/// every read. Clients only send small control messages (subscribe, pong), and the
/// default of 128 KiB per connection, zeroed on each wake-up, made memory and `memset`
/// the cost of ten thousand idle connections. A larger message still arrives whole: the
/// buffer grows for it.
const READ_BUFFER: usize = 1024;
/// Frames go to the socket as soon as they are sent (no per-connection write buffer kept
/// at 128 KiB); the outbox is the queue.
const WRITE_BUFFER: usize = 0;
/// The largest message a client may send: a `subscribe` is a few dozen bytes, so anything
/// near this is not a client of this API and is closed before it fills memory.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Frames sent in one go when several are waiting, before the socket is flushed.
const BATCH: usize = 16;

type Sink = futures::stream::SplitSink<WebSocket, Message>;

/// Sends one message within `SEND_TIMEOUT`; false when the client is gone.
async fn send(tx: &mut Sink, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, tx.send(message)).await,
        Ok(Ok(()))
    )
}

/// Sends the waiting frames (the shared buffers, not copies) and flushes once, within
/// `SEND_TIMEOUT`; false when the client is gone.
async fn send_all(tx: &mut Sink, frames: &mut Vec<Frame>) -> bool {
    let write = async {
        for frame in frames.drain(..) {
            tx.feed(Message::Text(frame.websocket)).await?;
        }
        tx.flush().await
    };
    let mut write = std::pin::pin!(write);
    // A client that reads keeps room in its socket buffer, so the write is usually done
    // at the first poll: the timer (a clock read and a wheel entry per delivery, ten
    // thousand per event) is only armed for a write that has to wait.
    if let std::task::Poll::Ready(done) = futures::poll!(write.as_mut()) {
        return done.is_ok();
    }
    matches!(tokio::time::timeout(SEND_TIMEOUT, write).await, Ok(Ok(())))
}

pub async fn handler(
    State(s): State<Streamer>,
    headers: HeaderMap,
    uri: Uri,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return error(400, "Unknown channel requested");
    };
    let viewer = match super::authenticate(&s, &headers, &uri).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let (viewer, token) = viewer;
    let initial = query_request(&uri);
    let ws = match token.protocol {
        Some(p) => ws.protocols([p]),
        None => ws,
    };
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| session(s, viewer, socket, initial))
        .into_response()
}

/// `?stream=hashtag&tag=x`, if the URL names a stream.
fn query_request(uri: &Uri) -> Option<Request> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(uri.query()?).ok()?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    Some(Request {
        stream: get("stream").filter(|s| !s.is_empty())?,
        tag: get("tag"),
        list: get("list"),
    })
}

/// A client's message. `stream` may be a string or an array (its first element), `list` a
/// string or a number, as clients send them.
#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    stream: serde_json::Value,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    list: Option<serde_json::Value>,
}

impl ClientMessage {
    fn request(&self) -> Request {
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Array(a) => a.first().and_then(|f| f.as_str()).map(String::from),
            _ => None,
        };
        Request {
            stream: text(&self.stream).unwrap_or_default(),
            tag: self.tag.clone(),
            list: self.list.as_ref().and_then(text),
        }
    }
}

async fn session(
    s: Streamer,
    viewer: super::viewer::Viewer,
    socket: WebSocket,
    initial: Option<Request>,
) {
    let mut conn = s.hub.open(viewer, "websocket");
    let (mut tx, mut rx) = socket.split();
    if let Some(req) = initial
        && let Err((status, message)) = start_stream(&s, &mut conn, &req).await
    {
        send(&mut tx, refusal(status, message)).await;
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut answered = true;
    // One waiter on the closer for the whole session, not a new one per delivery.
    let closer = conn.closer.clone();
    let closed = closer.notified();
    tokio::pin!(closed);
    let mut batch = Vec::new();
    loop {
        // In this order, and only until one is ready: a delivery (the common wake-up)
        // polls the closer and the queue, not also the socket's read side and the ping
        // timer, as a random order would on average. A client's own messages (subscribe,
        // pong) wait while frames are queued for it: one that keeps up empties its queue
        // between events, one that does not is closed when the queue is full.
        tokio::select! {
            biased;
            _ = &mut closed => {
                send(&mut tx, Message::Close(None)).await;
                break;
            }
            n = conn.inbox.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
                // A client closed for being slow is usually stuck in this write: it goes
                // now, not when the write times out.
                let sent = tokio::select! {
                    sent = send_all(&mut tx, &mut batch) => sent,
                    _ = &mut closed => false,
                };
                if !sent {
                    break;
                }
            }
            message = rx.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let Ok(m) = serde_json::from_str::<ClientMessage>(text.as_str()) else {
                        continue;
                    };
                    let req = m.request();
                    let outcome = match m.kind.as_str() {
                        "subscribe" => start_stream(&s, &mut conn, &req).await,
                        "unsubscribe" => stream_plan(&conn, &req).map(|plan| conn.unsubscribe(&plan)),
                        _ => Ok(()),
                    };
                    if let Err((status, message)) = outcome
                        && !send(&mut tx, refusal(status, message)).await
                    {
                        break;
                    }
                }
                Some(Ok(Message::Pong(_))) => answered = true,
                Some(Ok(Message::Ping(_))) => {}
                Some(Ok(Message::Binary(_))) => {
                    let close = CloseFrame {
                        code: close_code::UNSUPPORTED,
                        reason: "The mastodon streaming server does not support binary messages".into(),
                    };
                    send(&mut tx, Message::Close(Some(close))).await;
                    break;
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            _ = ping.tick() => {
                if !answered {
                    break;
                }
                answered = false;
                if !send(&mut tx, Message::Ping(Default::default())).await {
                    break;
                }
            }
        }
    }
}

fn refusal(status: u16, message: &str) -> Message {
    Message::Text(
        json!({"error": message, "status": status})
            .to_string()
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_accept_the_shapes_clients_send() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"subscribe","stream":["list"],"list":12}"#).unwrap();
        let r = m.request();
        assert_eq!((r.stream.as_str(), r.list.as_deref()), ("list", Some("12")));
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"subscribe","stream":"hashtag","tag":"x"}"#).unwrap();
        assert_eq!(m.request().tag.as_deref(), Some("x"));
        let q = query_request(
            &"/api/v1/streaming?stream=user&access_token=t"
                .parse()
                .unwrap(),
        );
        assert_eq!(q.unwrap().stream, "user");
        assert_eq!(query_request(&"/api/v1/streaming".parse().unwrap()), None);
    }
}
