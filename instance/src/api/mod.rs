//! The `api` role: the HTTP router and its server.

mod accounts;
mod error;
mod health;
mod instance;
mod oauth;
pub mod pagination;
pub mod params;

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
        .fallback(|| async { ApiError::NotFound })
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let state = AppState::new(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    info!(addr = %config.listen, domain = %config.domain, "api listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(crate::shutdown::signal())
        .await?;
    Ok(())
}
