//! The `api` role: the HTTP router and its server.

mod accounts;
pub(crate) mod conversations;
mod domain_blocks;
pub mod entities;
mod error;
pub(crate) mod filters;
pub(crate) mod health;
pub(crate) mod instance;
mod lists;
pub(crate) mod media;
pub(crate) mod notifications;
mod oauth;
pub mod pagination;
pub mod params;
pub(crate) mod polls;
mod rate_limit;
mod search;
mod statuses;
pub(crate) mod timelines;

use axum::Router;
use fedi_config::ServerConfig;
use tower_http::trace::TraceLayer;
use tracing::info;

use crate::state::AppState;

pub use error::ApiError;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(oauth::routes())
        .merge(accounts::routes())
        .merge(instance::routes())
        .merge(statuses::routes())
        .merge(media::routes())
        .merge(timelines::routes())
        .merge(conversations::routes())
        .merge(domain_blocks::routes())
        .merge(filters::routes())
        .merge(lists::routes())
        .merge(search::routes())
        .merge(notifications::routes())
        .merge(polls::routes())
        .merge(crate::federation::routes())
        // The web client for browsers; the JSON 404 for everything else.
        .fallback(crate::web::fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ))
        .layer(cors())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// Browser clients (Elk, Phanpy) call the API from their own origins with a bearer token,
/// never with cookies: any origin may, as on Mastodon, and they may read the pagination and
/// rate-limit headers.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method};
    use tower_http::cors::{Any, CorsLayer};
    CorsLayer::new()
        .allow_origin(Any)
        .allow_headers(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .expose_headers([
            HeaderName::from_static("link"),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(std::time::Duration::from_secs(86400))
}

/// The span of a request: method and path only. Query strings can carry credentials
/// (`access_token`, confirmation tokens) and must never reach a log.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
    )
}

pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let state = AppState::new(&config)?;
    crate::auth::token_changes::spawn(&state)?;
    crate::web::check_root(&config.web_root());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    info!(addr = %config.listen, domain = %config.domain, "api listening");
    // `/api/v1/instance/` and `/oauth/authorize/` work as without the slash (toot and
    // Mastodon.py ask for some URLs so): the path is normalised before routing.
    let app = tower_http::normalize_path::NormalizePath::trim_trailing_slash(router(state));
    axum::serve(
        listener,
        // The peer's address: the rate limits count clients by it.
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            std::net::SocketAddr,
        >(app),
    )
    .with_graceful_shutdown(crate::shutdown::signal())
    .await?;
    Ok(())
}
