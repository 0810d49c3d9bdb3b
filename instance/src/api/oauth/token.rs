//! `POST /oauth/token`: the authorization_code (with PKCE), client_credentials, password and
//! refresh_token grants. Errors follow RFC 6749 §5.2.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::client::{Application, authenticate, credentials};
use super::pkce;
use super::users::{SignIn, User, sign_in};
use crate::api::ApiError;
use crate::api::params::{Params, flex};
use crate::auth::Scopes;
use crate::auth::credentials::{digest, new_secret};
use crate::auth::token_cache::Change;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub(super) struct TokenRequest {
    #[serde(default)]
    grant_type: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    code_verifier: Option<String>,
    /// Space-separated; some clients send a list.
    #[serde(default, deserialize_with = "flex::list")]
    scope: Vec<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    scope: String,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

pub(super) async fn exchange(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Params<TokenRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let req = params
        .map_err(|e| invalid_request(format!("The request is malformed: {e}")))?
        .value;
    let grant = match req.grant_type.as_deref() {
        None | Some("") => return Err(invalid_request("Missing required parameter: grant_type.")),
        Some(g @ ("authorization_code" | "client_credentials" | "password" | "refresh_token")) => {
            g.to_string()
        }
        Some(_) => {
            return Err(ApiError::oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            ));
        }
    };
    let creds = credentials(
        &headers,
        req.client_id.as_deref(),
        req.client_secret.as_deref(),
    );
    let app = authenticate(&state, creds).await?;
    let token = match grant.as_str() {
        "authorization_code" => authorization_code(&state, &app, &req).await?,
        "client_credentials" => {
            let scopes = requested_scopes(&req, &app.scopes())?;
            issue(&state, app.id, None, &scopes, false).await?
        }
        "password" => password(&state, &app, &req).await?,
        _ => refresh(&state, &app, &req).await?,
    };
    info!(app_id = app.id, grant = %grant, "token issued");
    let mut response = Json(token).into_response();
    // RFC 6749 §5.1: responses carrying tokens are not to be cached.
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

#[derive(sqlx::FromRow)]
struct Code {
    user_id: i64,
    redirect_uri: String,
    scopes: String,
    code_challenge: Option<String>,
}

async fn authorization_code(
    state: &AppState,
    app: &Application,
    req: &TokenRequest,
) -> Result<TokenResponse, ApiError> {
    let code = required(&req.code, "code")?;
    let redirect_uri = required(&req.redirect_uri, "redirect_uri")?;
    // Claimed before anything else is checked: a code is spent by its first use, so a
    // wrong verifier cannot be retried against it.
    let claimed: Option<Code> = sqlx::query_as(
        "UPDATE oauth_authorization_codes SET used_at = now() \
         WHERE code_hash = $1 AND application_id = $2 AND used_at IS NULL \
           AND expires_at > now() \
         RETURNING user_id, redirect_uri, scopes, code_challenge",
    )
    .bind(digest(code))
    .bind(app.id)
    .fetch_optional(state.db.primary())
    .await?;
    let code = claimed.ok_or_else(invalid_grant)?;
    if code.redirect_uri != redirect_uri {
        return Err(invalid_grant());
    }
    match (&code.code_challenge, req.code_verifier.as_deref()) {
        (None, None) => {}
        (Some(challenge), Some(verifier)) if pkce::s256_matches(verifier, challenge) => {}
        (Some(_), None) => {
            return Err(invalid_grant_because("The code_verifier is missing."));
        }
        // A verifier for a code that had no challenge: a PKCE downgrade, refused as the
        // OAuth security BCP asks.
        _ => return Err(invalid_grant_because("The code_verifier does not match.")),
    }
    let user = usable_user(state, code.user_id).await?;
    let scopes = Scopes::parse(&code.scopes).map_err(|_| invalid_grant())?;
    issue(state, app.id, Some(user.id), &scopes, true).await
}

async fn password(
    state: &AppState,
    app: &Application,
    req: &TokenRequest,
) -> Result<TokenResponse, ApiError> {
    let username = required(&req.username, "username")?;
    let password = required(&req.password, "password")?;
    let scopes = requested_scopes(req, &app.scopes())?;
    match sign_in(state, username.trim(), password).await? {
        SignIn::Ok(user) => issue(state, app.id, Some(user.id), &scopes, true).await,
        SignIn::BadCredentials => Err(invalid_grant()),
        SignIn::Refused(reason) => Err(invalid_grant_because(reason)),
    }
}

#[derive(sqlx::FromRow)]
struct Refreshed {
    id: i64,
    user_id: Option<i64>,
    scopes: String,
}

/// The old token is revoked and a new pair issued in one transaction; a narrower `scope`
/// may be asked for (RFC 6749 §6).
async fn refresh(
    state: &AppState,
    app: &Application,
    req: &TokenRequest,
) -> Result<TokenResponse, ApiError> {
    let refresh_token = required(&req.refresh_token, "refresh_token")?;
    let old: Option<Refreshed> = sqlx::query_as(
        "SELECT id, user_id, scopes FROM oauth_access_tokens \
         WHERE refresh_token_hash = $1 AND application_id = $2 AND revoked_at IS NULL",
    )
    .bind(digest(refresh_token))
    .bind(app.id)
    .fetch_optional(state.db.primary())
    .await?;
    let old = old.ok_or_else(invalid_grant)?;
    let granted = Scopes::parse(&old.scopes).map_err(|_| invalid_grant())?;
    let scopes = if req.scope.is_empty() {
        granted
    } else {
        requested_scopes(req, &granted)?
    };
    let user_id = match old.user_id {
        Some(id) => Some(usable_user(state, id).await?.id),
        None => None,
    };
    let mut tx = state.db.begin().await?;
    // Of two concurrent refreshes with the same token, only one revokes it.
    let revoked = sqlx::query(
        "UPDATE oauth_access_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(old.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if revoked == 0 {
        return Err(invalid_grant());
    }
    let token = insert(&mut tx, app.id, user_id, &scopes, true).await?;
    tx.commit().await?;
    // At once here; in the other processes through PostgreSQL (auth::token_changes).
    state.tokens.invalidate(Change::Token(old.id));
    Ok(token)
}

/// The user behind a grant, if they may still use the service.
async fn usable_user(state: &AppState, user_id: i64) -> Result<User, ApiError> {
    let user = User::by_id(state, user_id)
        .await?
        .ok_or_else(invalid_grant)?;
    match user.refusal() {
        Some(reason) => Err(invalid_grant_because(reason)),
        None => Ok(user),
    }
}

/// `scope` (default `read`, as in Mastodon), which must stay within `allowed`.
fn requested_scopes(req: &TokenRequest, allowed: &Scopes) -> Result<Scopes, ApiError> {
    Scopes::parse(&req.scope.join(" "))
        .ok()
        .filter(|s| s.within(allowed))
        .ok_or_else(|| {
            ApiError::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "The requested scope is invalid, unknown, or malformed.",
            )
        })
}

async fn issue(
    state: &AppState,
    app_id: i64,
    user_id: Option<i64>,
    scopes: &Scopes,
    with_refresh: bool,
) -> Result<TokenResponse, ApiError> {
    let mut conn = state.db.primary().acquire().await?;
    insert(&mut conn, app_id, user_id, scopes, with_refresh).await
}

/// A new access token (and refresh token for user grants; RFC 6749 §4.4.3 says none for
/// client_credentials). Only their digests are stored.
async fn insert(
    conn: &mut sqlx::PgConnection,
    app_id: i64,
    user_id: Option<i64>,
    scopes: &Scopes,
    with_refresh: bool,
) -> Result<TokenResponse, ApiError> {
    let access_token = new_secret();
    let refresh_token = with_refresh.then(new_secret);
    let (created_at,): (i64,) = sqlx::query_as(
        "INSERT INTO oauth_access_tokens \
             (token_hash, refresh_token_hash, application_id, user_id, scopes) \
         VALUES ($1, $2, $3, $4, $5) \
         RETURNING extract(epoch FROM created_at)::bigint",
    )
    .bind(digest(&access_token))
    .bind(refresh_token.as_deref().map(digest))
    .bind(app_id)
    .bind(user_id)
    .bind(scopes.to_string())
    .fetch_one(&mut *conn)
    .await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        scope: scopes.to_string(),
        created_at,
        refresh_token,
    })
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid_request(format!("Missing required parameter: {name}.")))
}

fn invalid_request(description: impl Into<String>) -> ApiError {
    ApiError::oauth(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_grant() -> ApiError {
    invalid_grant_because(
        "The provided authorization grant is invalid, expired, revoked, does not match the \
         redirection URI used in the authorization request, or was issued to another client.",
    )
}

fn invalid_grant_because(description: &str) -> ApiError {
    ApiError::oauth(StatusCode::BAD_REQUEST, "invalid_grant", description)
}
