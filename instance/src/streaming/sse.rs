//! `GET /api/v1/streaming/<stream>`: one stream as server-sent events, `:)` first and a
//! `:thump` comment every 15 s so that proxies keep the connection open.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

use super::hub::Connection;
use super::streams::{self, Request};
use super::{Streamer, error, start_stream};

const HEARTBEAT: Duration = Duration::from_secs(15);

/// Mastodon's `isTruthy`: present and not one of its false spellings.
fn truthy(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        !v.is_empty() && !matches!(v, "0" | "f" | "F" | "false" | "FALSE" | "off" | "OFF")
    })
}

pub async fn handler(State(s): State<Streamer>, headers: HeaderMap, uri: Uri) -> Response {
    let pairs: Vec<(String, String)> = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let rest = uri.path().trim_start_matches("/api/v1/streaming/");
    let Some(stream) = streams::from_path(rest, truthy(get("only_media").as_deref())) else {
        return error(400, "Unknown channel requested");
    };
    let (viewer, _) = match super::authenticate(&s, &headers, &uri).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let mut conn = s.hub.open(viewer, "eventsource");
    let req = Request {
        stream: stream.into(),
        tag: get("tag"),
        list: get("list"),
    };
    if let Err((status, message)) = start_stream(&s, &mut conn, &req).await {
        return error(status, message);
    }
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .header(CACHE_CONTROL, "no-store")
        .body(Body::from_stream(events(conn)))
        .expect("static headers are valid")
}

/// The body: ends when the connection must close; dropping it (the client went away)
/// drops the connection and its subscriptions.
fn events(conn: Connection) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    let heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    futures::stream::unfold(
        (conn, heartbeat, false),
        |(mut conn, mut heartbeat, started)| async move {
            if !started {
                return Some((Ok(Bytes::from_static(b":)\n")), (conn, heartbeat, true)));
            }
            let chunk = tokio::select! {
                frame = conn.inbox.recv() => frame?.sse,
                _ = conn.closer.notified() => return None,
                _ = heartbeat.tick() => Bytes::from_static(b":thump\n"),
            };
            Some((Ok(chunk), (conn, heartbeat, true)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_media_is_read_as_mastodon_reads_it() {
        assert!(truthy(Some("true")) && truthy(Some("1")) && truthy(Some("yes")));
        assert!(!truthy(Some("false")) && !truthy(Some("0")) && !truthy(Some("")));
        assert!(!truthy(None));
    }
}
