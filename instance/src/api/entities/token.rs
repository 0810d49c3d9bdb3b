//! Mastodon's `Token` entity, as the OAuth token endpoint and registration return it.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Token {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Space-separated.
    pub scope: String,
    /// Seconds since the epoch (unlike every other Mastodon timestamp).
    pub created_at: i64,
}

impl Token {
    pub fn bearer(access_token: String, scope: String, created_at: i64) -> Self {
        Self {
            access_token,
            token_type: "Bearer",
            scope,
            created_at,
        }
    }
}
