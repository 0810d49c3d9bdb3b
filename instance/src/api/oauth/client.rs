//! Registered applications and how a client proves it is one (RFC 6749 §2.3.1: HTTP Basic
//! or `client_id`/`client_secret` parameters).

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::api::ApiError;
use crate::auth::Scopes;
use crate::auth::credentials::digest;
use crate::state::AppState;

#[derive(Clone, Debug, sqlx::FromRow)]
pub(super) struct Application {
    pub id: i64,
    pub name: String,
    pub website: Option<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: String,
    pub client_secret_hash: String,
}

const COLUMNS: &str = "id, name, website, redirect_uris, scopes, client_secret_hash";

impl Application {
    /// On the primary: a client registers and sends its user here the next moment.
    pub async fn by_client_id(state: &AppState, client_id: &str) -> Result<Option<Self>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM oauth_applications WHERE client_id = $1"
        )))
        .bind(client_id)
        .fetch_optional(state.db.primary())
        .await?)
    }

    pub async fn by_id(state: &AppState, id: i64) -> Result<Option<Self>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM oauth_applications WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(state.db.primary())
        .await?)
    }

    /// Stored scopes were validated at registration; a scope since retired grants nothing.
    pub fn scopes(&self) -> Scopes {
        Scopes::parse(&self.scopes).unwrap_or_default()
    }

    fn secret_matches(&self, secret: &str) -> bool {
        constant_time_eq(
            digest(secret).as_bytes(),
            self.client_secret_hash.as_bytes(),
        )
    }
}

/// What the client presented; the secret may be missing (then authentication fails).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ClientCredentials {
    pub id: String,
    pub secret: Option<String>,
}

/// HTTP Basic first, then the parameters (Doorkeeper's order).
pub(super) fn credentials(
    headers: &HeaderMap,
    client_id: Option<&str>,
    client_secret: Option<&str>,
) -> Option<ClientCredentials> {
    if let Some(basic) = basic(headers) {
        return Some(basic);
    }
    let id = client_id.filter(|s| !s.is_empty())?;
    Some(ClientCredentials {
        id: id.to_string(),
        secret: client_secret.map(str::to_string),
    })
}

/// `Authorization: Basic base64(form-encoded id ":" form-encoded secret)`.
fn basic(headers: &HeaderMap) -> Option<ClientCredentials> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_decode(id);
    (!id.is_empty()).then(|| ClientCredentials {
        id,
        secret: Some(form_decode(secret)),
    })
}

/// RFC 6749 §2.3.1 form-encodes both halves; many clients do not, which is the same for
/// the base64url values this server issues.
fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(s.as_bytes())
        .next()
        .filter(|(_, v)| v.is_empty() && !s.contains(['=', '&']))
        .map(|(k, _)| k.into_owned())
        .unwrap_or_else(|| s.to_string())
}

pub(super) fn invalid_client() -> ApiError {
    ApiError::oauth(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication failed due to unknown client, no client authentication \
         included, or unsupported authentication method.",
    )
}

/// The application whose id and secret were presented.
pub(super) async fn authenticate(
    state: &AppState,
    credentials: Option<ClientCredentials>,
) -> Result<Application, ApiError> {
    let creds = credentials.ok_or_else(invalid_client)?;
    let secret = creds.secret.as_deref().ok_or_else(invalid_client)?;
    match Application::by_client_id(state, &creds.id).await? {
        Some(app) if app.secret_matches(secret) => Ok(app),
        _ => Err(invalid_client()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn creds(id: &str, secret: Option<&str>) -> Option<ClientCredentials> {
        Some(ClientCredentials {
            id: id.into(),
            secret: secret.map(String::from),
        })
    }

    #[test]
    fn basic_wins_over_parameters_and_is_form_decoded() {
        let basic = format!("Basic {}", STANDARD.encode("my%20id:s%3Acret+x"));
        assert_eq!(
            credentials(&with_auth(&basic), Some("other"), Some("x")),
            creds("my id", Some("s:cret x"))
        );
        let raw = format!("basic {}", STANDARD.encode("abc-_1:S3cr-et_"));
        assert_eq!(
            credentials(&with_auth(&raw), None, None),
            creds("abc-_1", Some("S3cr-et_"))
        );
        // Not Basic (a bearer token on the token endpoint): the parameters count.
        assert_eq!(
            credentials(&with_auth("Bearer t"), Some("id"), Some("s")),
            creds("id", Some("s"))
        );
        assert_eq!(
            credentials(&HeaderMap::new(), Some("id"), None),
            creds("id", None)
        );
        assert_eq!(credentials(&HeaderMap::new(), Some(""), Some("s")), None);
        assert_eq!(
            credentials(&with_auth("Basic !!!"), None, None),
            None,
            "malformed base64"
        );
        let no_colon = format!("Basic {}", STANDARD.encode("justid"));
        assert_eq!(credentials(&with_auth(&no_colon), None, None), None);
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
