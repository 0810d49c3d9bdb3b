//! Slow-client protection of the streamer: a WebSocket client that stops reading is closed
//! once its bounded queue is full, counted in `fedi_streaming_slow_clients_closed_total`,
//! and never delays or starves a client of the same stream that keeps reading.

mod common;
#[path = "streaming/support.rs"]
mod support;

use std::time::Duration;

use common::*;
use fedi_server::events::{Event, channel};
use futures::StreamExt;
use serde_json::json;
use support::*;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const WAIT: Duration = Duration::from_secs(10);
/// More than the streamer queues for one connection (512) plus what the kernel buffers
/// hold of frames this size on a receive window of a few KiB.
const EVENTS: usize = 1200;
/// Events published before waiting for the reading client to catch up: far below the
/// queue, so that only the client that stopped reading falls behind.
const ROUND: usize = 50;

/// A status of about 8 KiB, so that the socket's buffers fill after a few frames.
fn big_status(id: usize, author: i64) -> serde_json::Value {
    let mut s = status(id as i64 + 1, author, "alice", Some("en"));
    s["content"] = json!(format!("<p>{}</p>", "x".repeat(8 * 1024)));
    s
}

async fn metric(base: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_counted_and_others_keep_up() {
    let db = migrated_database().await;
    let (redis, env) = redis_env(false);
    let streamer = start_streamer(&db, &redis, &env).await;
    let state = app_state(&db, &redis, false);
    let (alice, user) = create_user(&db, "alice", "correct horse battery").await;
    let token = issue_token(&db, Some(user), "read").await;
    let home = channel::user(alice);

    // The stalled client: a small receive buffer (no window to grow into), the handshake,
    // then never a read again.
    let url = format!(
        "{}/api/v1/streaming?stream=user",
        streamer.base_url.replacen("http", "ws", 1)
    );
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = streamer
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (stalled, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();

    let mut reader = Ws::connect(&streamer.base_url, "stream=user", Auth::Header(&token))
        .await
        .unwrap();
    until_subscribed(&mut reader, &state, &home, WAIT).await;
    eventually(WAIT, "both connections to be open", || async {
        let open = metric(
            &streamer.base_url,
            r#"fedi_streaming_connections{type="websocket"}"#,
        )
        .await?;
        (open == 2.0).then_some(())
    })
    .await;
    assert_eq!(
        metric(
            &streamer.base_url,
            "fedi_streaming_slow_clients_closed_total"
        )
        .await,
        Some(0.0)
    );

    // The reading client counts what it gets, in order.
    let (got_tx, mut got) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let reading = tokio::spawn(async move {
        loop {
            let Some(frame) = reader.next(WAIT).await else {
                return reader;
            };
            let payload: serde_json::Value =
                serde_json::from_str(frame["payload"].as_str().unwrap()).unwrap();
            let id: usize = payload["id"].as_str().unwrap().parse().unwrap();
            if got_tx.send(id - 1).is_err() {
                return reader;
            }
        }
    });

    let mut received = 0;
    for round in (0..EVENTS).step_by(ROUND) {
        for n in round..(round + ROUND).min(EVENTS) {
            publish(&state, &home, &Event::update(&big_status(n, alice))).await;
        }
        while received < (round + ROUND).min(EVENTS) {
            let n = tokio::time::timeout(WAIT, got.recv())
                .await
                .expect("the reading client fell behind")
                .expect("the reading client's connection ended");
            assert_eq!(n, received, "events arrive in order");
            received += 1;
        }
    }

    let closed = eventually(WAIT, "the stalled client to be counted as slow", || async {
        let n = metric(
            &streamer.base_url,
            "fedi_streaming_slow_clients_closed_total",
        )
        .await?;
        (n >= 1.0).then_some(n)
    })
    .await;
    assert_eq!(closed, 1.0, "only the stalled client is slow");
    // Its connection goes (at the latest when its pending write times out), the reading
    // one stays.
    eventually(
        Duration::from_secs(30),
        "the stalled connection to close",
        || async {
            let open = metric(
                &streamer.base_url,
                r#"fedi_streaming_connections{type="websocket"}"#,
            )
            .await?;
            (open == 1.0).then_some(())
        },
    )
    .await;
    let still = Event::update(&big_status(EVENTS, alice));
    publish(&state, &home, &still).await;
    let n = tokio::time::timeout(WAIT, got.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, EVENTS, "the reading client still receives");

    // What the stalled client has in its buffers ends well short of everything, then the
    // connection ends.
    drop(got);
    reading.abort();
    let mut stalled = stalled;
    let mut frames = 0;
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(m) = stalled.next().await {
            match m {
                Ok(Message::Text(_)) => frames += 1,
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled connection was not closed");
    assert!(frames < EVENTS, "the stalled client got {frames} frames");
}
