//! The bearer token of a request, resolved to the application, the user and the scopes it
//! was granted. Endpoints take `Auth` (a token is required) or `MaybeAuth` (public data
//! that a token may widen), then call `require` with the scope they need.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};

use super::credentials::digest;
use super::scopes::{Scope, Scopes};
use crate::api::ApiError;
use crate::state::AppState;

/// A caller with a valid token.
#[derive(Clone, Debug)]
pub struct Auth {
    pub token_id: i64,
    pub application_id: i64,
    /// None for an application's own token (client_credentials).
    pub user: Option<AuthUser>,
    pub scopes: Scopes,
}

#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user_id: i64,
    pub account_id: i64,
    pub role: String,
}

impl Auth {
    /// Refuses (403) a token that lacks `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::OutOfScope)
        }
    }

    /// The signed-in user: an application's own token cannot act as one.
    pub fn user(&self) -> Result<&AuthUser, ApiError> {
        self.user.as_ref().ok_or_else(|| {
            ApiError::Unprocessable("This method requires an authenticated user".into())
        })
    }
}

/// A token if the request carries one; an invalid one is still refused.
#[derive(Clone, Debug)]
pub struct MaybeAuth(pub Option<Auth>);

/// The token of `Authorization: Bearer ...`, or of the `access_token` query parameter that
/// Mastodon (Doorkeeper) also accepts.
pub(crate) fn bearer(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string())
            .filter(|t| !t.is_empty());
    }
    let query = parts.uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v)
        .filter(|t| !t.is_empty())
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    application_id: i64,
    user_id: Option<i64>,
    scopes: String,
    expires_at: Option<DateTime<Utc>>,
    account_id: Option<i64>,
    role: Option<String>,
    /// An application token, or a user who may sign in (confirmed, approved, not suspended).
    usable: bool,
}

/// The caller a token stands for: from the process's cache when it holds the token, else
/// from the database, whose answer the cache then keeps. Every column read here must be
/// announced by the triggers of migration `token_change_notifications` when it changes.
async fn resolve(state: &AppState, token: &str) -> Result<Auth, ApiError> {
    let key = digest(token);
    if let Some(auth) = state.tokens.get(&key) {
        return Ok(auth);
    }
    // Read before asking: a change announced while the query runs keeps its answer out.
    let generation = state.tokens.generation();
    // On the primary: a token issued a moment ago must work at once.
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT t.id, t.application_id, t.user_id, t.scopes, t.expires_at, u.account_id, u.role, \
                (u.id IS NULL OR (u.confirmed_at IS NOT NULL AND u.approved \
                                  AND a.suspended_at IS NULL)) AS usable \
         FROM oauth_access_tokens t \
         LEFT JOIN users u ON u.id = t.user_id \
         LEFT JOIN accounts a ON a.id = u.account_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL \
           AND (t.expires_at IS NULL OR t.expires_at > now())",
    )
    .bind(&key)
    .fetch_optional(state.db.primary())
    .await?;
    let Some(row) = row else {
        return Err(ApiError::Unauthorized);
    };
    if !row.usable {
        return Err(ApiError::Forbidden);
    }
    let user = match (row.user_id, row.account_id) {
        (Some(user_id), Some(account_id)) => Some(AuthUser {
            user_id,
            account_id,
            role: row.role.unwrap_or_default(),
        }),
        _ => None,
    };
    let auth = Auth {
        token_id: row.id,
        application_id: row.application_id,
        user,
        // Stored scopes were validated when granted; a scope since removed grants nothing.
        scopes: Scopes::parse(&row.scopes).unwrap_or_default(),
    };
    state
        .tokens
        .insert(key, auth.clone(), row.expires_at, generation);
    Ok(auth)
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        resolve(state, &token).await
    }
}

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(parts) {
            None => Ok(MaybeAuth(None)),
            Some(token) => resolve(state, &token).await.map(|a| MaybeAuth(Some(a))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(uri: &str, authorization: Option<&str>) -> Parts {
        let mut b = Request::builder().uri(uri);
        if let Some(a) = authorization {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_query() {
        let cases = [
            ("/x", Some("Bearer abc"), Some("abc")),
            ("/x", Some("bearer abc "), Some("abc")),
            ("/x", Some("Basic abc"), None),
            ("/x", Some("Bearer "), None),
            ("/x?access_token=q1", None, Some("q1")),
            ("/x?access_token=", None, None),
            ("/x", None, None),
        ];
        for (uri, header, want) in cases {
            assert_eq!(
                bearer(&parts(uri, header)).as_deref(),
                want,
                "{uri} {header:?}"
            );
        }
    }
}
