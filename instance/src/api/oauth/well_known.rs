//! `GET /.well-known/oauth-authorization-server` (RFC 8414), with the fields Mastodon 4.3
//! serves. Phanpy uses PKCE only when `code_challenge_methods_supported` lists S256.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::AppState;

pub(super) async fn metadata(State(state): State<AppState>) -> Json<Value> {
    let base = state.base_url();
    Json(json!({
        // Mastodon's issuer is its root URL, trailing slash included.
        "issuer": format!("{base}/"),
        "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        // Not RFC 7591 dynamic registration, hence Mastodon's non-standard name.
        "app_registration_endpoint": format!("{base}/api/v1/apps"),
        "scopes_supported": crate::auth::scopes::all(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "password", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }))
}
