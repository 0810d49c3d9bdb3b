//! `GET /.well-known/oauth-authorization-server` (RFC 8414), with the fields Mastodon 4.3
//! serves. Phanpy uses PKCE only when `code_challenge_methods_supported` lists S256.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::AppState;

/// Every scope a client may ask for, in Mastodon's order. Kept beside `auth::scopes`,
/// which decides what each one grants; a test checks that both agree.
pub(super) const SCOPES: &[&str] = &[
    "read",
    "write",
    "write:accounts",
    "write:blocks",
    "write:bookmarks",
    "write:conversations",
    "write:favourites",
    "write:filters",
    "write:follows",
    "write:lists",
    "write:media",
    "write:mutes",
    "write:notifications",
    "write:reports",
    "write:statuses",
    "read:accounts",
    "read:blocks",
    "read:bookmarks",
    "read:favourites",
    "read:filters",
    "read:follows",
    "read:lists",
    "read:mutes",
    "read:notifications",
    "read:search",
    "read:statuses",
    "follow",
    "push",
    "profile",
    "admin:read",
    "admin:read:accounts",
    "admin:read:reports",
    "admin:read:domain_allows",
    "admin:read:domain_blocks",
    "admin:read:ip_blocks",
    "admin:read:email_domain_blocks",
    "admin:read:canonical_email_blocks",
    "admin:write",
    "admin:write:accounts",
    "admin:write:reports",
    "admin:write:domain_allows",
    "admin:write:domain_blocks",
    "admin:write:ip_blocks",
    "admin:write:email_domain_blocks",
    "admin:write:canonical_email_blocks",
];

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
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "password", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scopes;

    #[test]
    fn every_listed_scope_is_one_the_server_knows() {
        for scope in SCOPES {
            assert_eq!(
                Scopes::parse(scope).map(|s| s.to_string()).as_deref(),
                Ok(*scope),
                "{scope}"
            );
        }
        let all = Scopes::parse(&SCOPES.join(" ")).unwrap();
        assert_eq!(all.iter().count(), SCOPES.len(), "no duplicates");
    }
}
