//! The `streamer` role: Mastodon's streaming API (WebSocket and server-sent events) fed by
//! Redis pub/sub (see `events` for the channels and the message shape).
//!
//! Every replica serves any user: publishers PUBLISH once, every streamer subscribed to the
//! channel relays it to its own clients after per-viewer filtering. One Redis connection
//! per process carries the subscriptions of all its clients (`pubsub`), the hub routes
//! messages to connections (`hub`). A revoked token's connections close at once (its
//! `timeline:access_token:<id>` channel carries `kill`), and every 15 s the streamer
//! re-checks the tokens it serves, which catches password resets, suspensions and expiries.

pub mod filter;
mod hub;
mod metrics;
mod pubsub;
pub mod schema;
mod sse;
mod streams;
mod viewer;
mod websocket;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use fedi_config::ServerConfig;
use serde_json::json;
use tower_http::trace::TraceLayer;
use tracing::{debug, info, warn};

use crate::state::AppState;
use hub::{Connection, Hub};
use streams::{Plan, Refusal, Request};

/// What every streaming handler shares.
#[derive(Clone)]
pub struct Streamer {
    hub: Arc<Hub>,
}

/// Mastodon's SSE paths; anything else under `/api/v1/streaming/` is an unknown channel.
const SSE_PATHS: &[&str] = &[
    "user",
    "user/notification",
    "public",
    "public/local",
    "public/remote",
    "hashtag",
    "hashtag/local",
    "list",
    "direct",
];

fn routes() -> Router<Streamer> {
    let mut router = Router::new()
        .route("/api/v1/streaming", get(websocket::handler))
        .route("/api/v1/streaming/health", get(health))
        .route(
            "/api/v1/streaming/{*rest}",
            get(|| async { error(400, "Unknown channel requested") }),
        );
    for path in SSE_PATHS {
        router = router.route(&format!("/api/v1/streaming/{path}"), get(sse::handler));
    }
    router
}

/// The streaming routes, with their hub started (inside a Tokio runtime).
pub fn router(state: AppState) -> anyhow::Result<(Router, Arc<Hub>)> {
    let hub = Hub::start(state)?;
    let router = routes()
        .layer(cors())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(Streamer { hub: hub.clone() });
    Ok((router, hub))
}

/// The `streamer` role: the streaming API with its own probes and metrics.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let state = AppState::new(&config)?;
    // Token changes make the hub re-validate its connections at once.
    crate::auth::token_changes::spawn(&state)?;
    let (streaming, hub) = router(state)?;
    let probes = Router::new()
        .route("/health", get(|| async { "OK" }))
        .route("/livez", get(|| async { "OK" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Streamer { hub: hub.clone() });
    run(&config, streaming.merge(probes), hub, "streamer").await
}

/// `fedi-server all`: the API and the streaming API on one listener, as one host serves
/// both behind the ingress in production.
pub async fn serve_with_api(config: ServerConfig) -> anyhow::Result<()> {
    let state = AppState::new(&config)?;
    crate::auth::token_changes::spawn(&state)?;
    let (streaming, hub) = router(state.clone())?;
    run(
        &config,
        crate::api::router(state).merge(streaming),
        hub,
        "api and streamer",
    )
    .await
}

async fn run(
    config: &ServerConfig,
    app: Router,
    hub: Arc<Hub>,
    what: &'static str,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?
        // Events are small writes that must leave at once: Nagle's algorithm would hold a
        // second one until the client's (delayed) acknowledgement of the first.
        .tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                debug!(error = %e, "cannot set TCP_NODELAY on a streaming connection");
            }
        });
    info!(addr = %config.listen, domain = %config.domain, "{what} listening");
    let app = tower_http::normalize_path::NormalizePath::trim_trailing_slash(app);
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
    )
    // Streams never end by themselves: on shutdown they are closed, so that the server
    // stops within the grace period and clients reconnect to another replica.
    .with_graceful_shutdown(async move {
        crate::shutdown::signal().await;
        hub.close_all();
    })
    .await?;
    Ok(())
}

/// Browser clients stream from other origins with a token, never cookies.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::Method;
    use tower_http::cors::{Any, CorsLayer};
    CorsLayer::new()
        .allow_origin(Any)
        .allow_headers(Any)
        .allow_methods([Method::GET, Method::OPTIONS])
}

/// Method and path only: the query string may carry the access token.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
    )
}

/// Mastodon's streaming errors: `{"error": "..."}` with the status.
fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// The viewer of a request, or the response refusing it.
async fn authenticate(
    s: &Streamer,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(viewer::Viewer, viewer::Token), Response> {
    let token = viewer::token(headers, uri).ok_or_else(|| error(401, "Missing access token"))?;
    match s.hub.viewer(&token).await {
        Ok(v) => Ok((v, token)),
        Err(viewer::Refused::Missing) => Err(error(401, "Missing access token")),
        Err(viewer::Refused::Invalid) => Err(error(401, "Invalid access token")),
        Err(viewer::Refused::Internal(e)) => Err(e.into_response()),
    }
}

/// The plan of `req` for this connection's viewer.
fn stream_plan(conn: &Connection, req: &Request) -> Result<Plan, (u16, &'static str)> {
    streams::plan(conn.viewer.account_id, &conn.viewer.scopes, req)
        .map_err(|r| (r.status(), r.message()))
}

/// Checks and starts `req` on `conn`.
async fn start_stream(
    s: &Streamer,
    conn: &mut Connection,
    req: &Request,
) -> Result<(), (u16, &'static str)> {
    let plan = stream_plan(conn, req)?;
    if let Some(list) = plan.list {
        match s.hub.owns_list(conn.viewer.account_id, list).await {
            Ok(true) => {}
            Ok(false) => return Err((Refusal::List.status(), Refusal::List.message())),
            Err(e) => {
                warn!(error = %e, "cannot check a list's owner");
                return Err((503, "Service unavailable"));
            }
        }
    }
    conn.subscribe(&plan).await;
    Ok(())
}

async fn health() -> Response {
    ([(CONTENT_TYPE, "text/plain")], "OK").into_response()
}

/// Ready when the database answers and the Redis subscriber works: a streamer that cannot
/// receive events must not take clients.
async fn readyz(State(s): State<Streamer>) -> (StatusCode, axum::Json<serde_json::Value>) {
    let db = tokio::time::timeout(
        Duration::from_secs(3),
        sqlx::query("SELECT 1").execute(s.hub.state().db.primary()),
    )
    .await;
    let database = matches!(db, Ok(Ok(_)));
    if !database {
        warn!("readiness: the database does not answer");
    }
    let redis = s.hub.pubsub.up.load(std::sync::atomic::Ordering::SeqCst);
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let ready = database && redis;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(json!({
            "status": word(ready),
            "checks": {"database": word(database), "redis": word(redis)},
        })),
    )
}

async fn metrics(State(s): State<Streamer>) -> Response {
    s.hub
        .metrics
        .redis_channels
        .set(s.hub.pubsub.count() as i64);
    s.hub.metrics.redis_up.set(i64::from(
        s.hub.pubsub.up.load(std::sync::atomic::Ordering::SeqCst),
    ));
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        s.hub.metrics.encode(),
    )
        .into_response()
}
