//! Who is streaming: the access token of a connection, from any of the three places clients
//! put it, resolved once when the connection opens and re-checked periodically after.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::http::{HeaderMap, Uri};

use crate::api::ApiError;
use crate::auth::{Auth, Scopes};
use crate::state::AppState;

use super::schema::Schema;

/// A signed-in user's connection.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub token_id: i64,
    pub account_id: i64,
    pub scopes: Scopes,
    /// The languages the user chose for public timelines; `None`: all.
    pub languages: Option<Vec<String>>,
}

/// Where the token came from. A token sent as `Sec-WebSocket-Protocol` must be echoed back
/// as the selected protocol, or browsers drop the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub value: String,
    pub protocol: Option<String>,
}

/// `Authorization: Bearer`, then `?access_token=`, then `Sec-WebSocket-Protocol`, in
/// Mastodon's order.
pub fn token(headers: &HeaderMap, uri: &Uri) -> Option<Token> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let token = match value.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => value.trim(),
        };
        return (!token.is_empty()).then(|| Token {
            value: token.to_string(),
            protocol: None,
        });
    }
    let from_query = uri.query().and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, v)| k == "access_token" && !v.is_empty())
            .map(|(_, v)| v)
    });
    if let Some(value) = from_query {
        return Some(Token {
            value,
            protocol: None,
        });
    }
    // A browser may offer several protocols; the token is the first.
    let protocol = headers
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())?;
    Some(Token {
        value: protocol.to_string(),
        protocol: Some(protocol.to_string()),
    })
}

/// Why a connection is refused before it opens.
#[derive(Debug)]
pub enum Refused {
    Missing,
    Invalid,
    Internal(ApiError),
}

/// Resolves the token with the API's own rules (revoked, expired, unconfirmed, unapproved or
/// suspended users are refused), then reads what filtering needs. Streaming needs a user:
/// an application's own token is refused, as on Mastodon.
pub async fn resolve(state: &AppState, schema: &Schema, token: &Token) -> Result<Viewer, Refused> {
    // The API's extractor reads the bearer header; the streamer's other two sources are
    // handed to it in that form, so that one function decides what a valid token is.
    let mut parts = axum::http::Request::builder()
        .header(AUTHORIZATION, format!("Bearer {}", token.value))
        .body(())
        .map_err(|_| Refused::Invalid)?
        .into_parts()
        .0;
    let auth = match Auth::from_request_parts(&mut parts, state).await {
        Ok(a) => a,
        Err(ApiError::Unauthorized | ApiError::Forbidden) => return Err(Refused::Invalid),
        Err(e) => return Err(Refused::Internal(e)),
    };
    let Some(user) = auth.user else {
        return Err(Refused::Invalid);
    };
    let languages = if schema.chosen_languages {
        sqlx::query_scalar::<_, Option<Vec<String>>>(
            "SELECT chosen_languages FROM users WHERE id = $1",
        )
        .bind(user.user_id)
        .fetch_optional(state.db.reader())
        .await
        .map_err(|e| Refused::Internal(e.into()))?
        .flatten()
        .filter(|l| !l.is_empty())
    } else {
        None
    };
    Ok(Viewer {
        token_id: auth.token_id,
        account_id: user.account_id,
        scopes: auth.scopes,
        languages,
    })
}

/// Of `token_ids`, those that still grant access: the same conditions as `Auth` (not revoked,
/// not expired, a user who may sign in). Tokens revoked where no `kill` message is sent
/// (an admin password reset, a suspension, an expiry, a message lost while Redis was down)
/// are found here.
pub async fn still_valid(state: &AppState, token_ids: &[i64]) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT t.id FROM oauth_access_tokens t \
         JOIN users u ON u.id = t.user_id \
         JOIN accounts a ON a.id = u.account_id \
         WHERE t.id = ANY($1) AND t.revoked_at IS NULL \
           AND (t.expires_at IS NULL OR t.expires_at > now()) \
           AND u.confirmed_at IS NOT NULL AND u.approved AND a.suspended_at IS NULL",
    )
    .bind(token_ids)
    .fetch_all(state.db.primary())
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_token_comes_from_header_query_or_protocol_in_that_order() {
        let uri: Uri = "/api/v1/streaming?stream=user&access_token=q"
            .parse()
            .unwrap();
        let bare: Uri = "/api/v1/streaming".parse().unwrap();
        let t = |h: &[(&str, &str)], u: &Uri| token(&headers(h), u);
        assert_eq!(
            t(&[("authorization", "Bearer h")], &uri).unwrap().value,
            "h"
        );
        assert_eq!(t(&[], &uri).unwrap().value, "q");
        let p = t(&[("sec-websocket-protocol", "p1, other")], &bare).unwrap();
        assert_eq!(
            (p.value.as_str(), p.protocol.as_deref()),
            ("p1", Some("p1"))
        );
        let q = t(&[("sec-websocket-protocol", "p1")], &uri).unwrap();
        assert_eq!((q.value.as_str(), q.protocol), ("q", None));
        assert_eq!(t(&[], &bare), None);
        assert_eq!(t(&[("authorization", "Bearer ")], &uri), None);
    }
}
