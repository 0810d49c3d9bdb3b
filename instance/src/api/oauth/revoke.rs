//! `POST /oauth/revoke` (RFC 7009), as Doorkeeper answers it: the client authenticates,
//! an unknown token is a success (the client learns nothing), another client's token is
//! refused.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::client::{authenticate, credentials};
use crate::api::ApiError;
use crate::api::params::Params;
use crate::auth::credentials::digest;
use crate::auth::token_cache::Change;
use crate::events;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub(super) struct RevokeRequest {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Params<RevokeRequest>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let req = params
        .map_err(|e| {
            ApiError::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("The request is malformed: {e}"),
            )
        })?
        .value;
    let app = authenticate(
        &state,
        credentials(
            &headers,
            req.client_id.as_deref(),
            req.client_secret.as_deref(),
        ),
    )
    .await?;
    let Some(token) = req.token.as_deref().filter(|t| !t.is_empty()) else {
        return Ok(Json(json!({})));
    };
    // Either half of a pair names it (`token_type_hint` is only a hint, so both are tried).
    let found: Option<(i64, i64)> = sqlx::query_as(
        "SELECT id, application_id FROM oauth_access_tokens \
         WHERE token_hash = $1 OR refresh_token_hash = $1",
    )
    .bind(digest(token))
    .fetch_optional(state.db.primary())
    .await?;
    let Some((id, owner)) = found else {
        return Ok(Json(json!({})));
    };
    if owner != app.id {
        return Err(ApiError::oauth(
            StatusCode::FORBIDDEN,
            "unauthorized_client",
            "You are not authorized to revoke this token",
        ));
    }
    sqlx::query(
        "UPDATE oauth_access_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(state.db.primary())
    .await?;
    // This process refuses it from the next request on; the others when PostgreSQL's
    // announcement reaches them (auth::token_changes), within milliseconds.
    state.tokens.invalidate(Change::Token(id));
    info!(app_id = app.id, token_id = id, "token revoked");
    // Open streaming connections of the token close at once; a lost message is caught by the
    // streamer's periodic re-validation, so a Redis failure does not fail the revocation.
    let (channel, kill) = (events::channel::access_token(id), events::Event::kill());
    let published = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        events::publish(&state, &channel, &kill),
    )
    .await;
    if !matches!(published, Ok(Ok(()))) {
        warn!(
            token_id = id,
            "could not tell the streamers about a revoked token"
        );
    }
    Ok(Json(json!({})))
}
