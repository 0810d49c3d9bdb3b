//! Probes. `/health` is Mastodon's liveness URL (the process answers); `/readyz` checks the
//! dependencies a request needs. Failure details go to the log, not the response, which is
//! public and must not reveal hosts or credentials.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tracing::warn;

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(|| async { "OK" }))
        .route("/livez", get(|| async { "OK" }))
        .route("/readyz", get(readyz))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    // The primary only: reads fall back to it when the replica is gone, so a lost replica
    // must not take every pod out of the Service.
    let database = async {
        let primary = state.db.primary();
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(primary))
            .await
            .map_err(|_| "timed out".to_string())?
            .map(drop)
            .map_err(|e| e.to_string())
    };
    let redis = async {
        tokio::time::timeout(CHECK_TIMEOUT, state.redis.ping())
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())
    };
    let (database, redis) = tokio::join!(database, redis);
    let mut ready = true;
    let mut verdict = |name: &str, result: Result<(), String>| match result {
        Ok(()) => "ok",
        Err(detail) => {
            warn!(dependency = name, error = detail, "readiness check failed");
            ready = false;
            "unavailable"
        }
    };
    let checks = json!({
        "database": verdict("database", database),
        "redis": verdict("redis", redis),
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // Informational, never a reason to take the pod out: without it, tokens are read from
    // the database as before.
    let token_cache = if !state.tokens.enabled() {
        "disabled"
    } else if state.tokens.trusted() {
        "serving"
    } else {
        "not serving"
    };
    (
        code,
        Json(json!({
            "status": if ready { "ok" } else { "unavailable" },
            "checks": checks,
            "token_cache": token_cache,
        })),
    )
}
