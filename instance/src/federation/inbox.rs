//! `POST /inbox` (shared) and `POST /users/:username/inbox`: the signature is verified
//! before anything else (synchronously: a bad one is a 401 the sender sees), then the
//! activity goes to the `ingress` queue and the sender gets 202.

use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::remote_keys::{self, KeyError, RemoteKey};
use super::signatures::{self, SignatureError};
use super::{documents, ingress};
use crate::state::AppState;

/// Larger activities than this are refused (Mastodon's limit on JSON bodies).
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("Could not verify the signature: {0}")]
    Key(#[from] KeyError),
    #[error("Verification failed for {0}")]
    BadSignature(String),
    #[error("Signed by {signer}, not by the activity's actor")]
    NotTheActor { signer: String },
    #[error("Invalid activity: {0}")]
    BadActivity(String),
    #[error("Record not found")]
    NoSuchInbox,
    #[error("{0} is blocked by this server")]
    Blocked(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl IntoResponse for InboxError {
    fn into_response(self) -> Response {
        let status = match &self {
            InboxError::Signature(_)
            | InboxError::Key(
                KeyError::Fetch { .. } | KeyError::NotFound(_) | KeyError::Unusable { .. },
            )
            | InboxError::BadSignature(_)
            | InboxError::NotTheActor { .. } => StatusCode::UNAUTHORIZED,
            InboxError::BadActivity(_) => StatusCode::BAD_REQUEST,
            InboxError::Blocked(_) => StatusCode::FORBIDDEN,
            InboxError::NoSuchInbox => StatusCode::NOT_FOUND,
            InboxError::Key(KeyError::Database(_)) | InboxError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        if status.is_server_error() {
            tracing::error!(error = ?self, "inbox failed");
        } else {
            tracing::info!(error = %self, "inbox refused an activity");
        }
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

pub async fn shared(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, InboxError> {
    receive(&state, None, &method, &uri, &headers, &body).await
}

pub async fn personal(
    State(state): State<AppState>,
    Path(username): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, InboxError> {
    let account = documents::actor::find_local(&state, &username)
        .await
        .map_err(|e| InboxError::Internal(e.into()))?
        .ok_or(InboxError::NoSuchInbox)?;
    receive(&state, Some(account.id), &method, &uri, &headers, &body).await
}

async fn receive(
    state: &AppState,
    inbox_account: Option<i64>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<StatusCode, InboxError> {
    let path_and_query = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let request = signatures::Request {
        method,
        path_and_query,
        headers,
        body,
        expected_host: &state.config.domain,
    };
    let signed = signatures::parse(&request, SystemTime::now())?;
    let activity: Value = serde_json::from_slice(body)
        .map_err(|e| InboxError::BadActivity(format!("not JSON: {e}")))?;
    let actor =
        activity_actor(&activity).ok_or_else(|| InboxError::BadActivity("no actor".into()))?;
    // Before any key is fetched: a suspended (or, in limited mode, unknown) server gets
    // nothing from us, not even a request back.
    refuse_blocked(state, &[&signed.key_id, &actor])?;
    let key = verified_key(state, &signed).await?;
    if key.owner != actor {
        return Err(InboxError::NotTheActor { signer: key.owner });
    }
    ingress::hand_off(state, activity, &key.owner, inbox_account)
        .await
        .map_err(InboxError::Internal)?;
    // A server that talks to us is up: deliveries to it resume (Mastodon resets its
    // DeliveryFailureTracker here too).
    crate::federation::delivery::domain_answered(state, &key.owner).await;
    Ok(StatusCode::ACCEPTED)
}

/// A 403 when one of `urls` is on a domain the federation policy refuses.
pub fn refuse_blocked(state: &AppState, urls: &[&str]) -> Result<(), InboxError> {
    let policy = super::domain_policy::of(state);
    match urls.iter().find(|u| policy.refuses_url(u)) {
        Some(url) => Err(InboxError::Blocked(
            super::remote_keys::host(url).unwrap_or_else(|| (*url).to_string()),
        )),
        None => Ok(()),
    }
}

/// `actor` as a string, or the `id` of an embedded actor object.
fn activity_actor(activity: &Value) -> Option<String> {
    match activity.get("actor")? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("id")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// The key that verifies `signed`: the cached one, or else (absent, or failing, since the
/// actor may have rotated it) the one fetched from its origin now, once.
pub(super) async fn verified_key(
    state: &AppState,
    signed: &signatures::Signed,
) -> Result<RemoteKey, InboxError> {
    if let Some(cached) = remote_keys::cached(&state.db, &signed.key_id).await?
        && signed.verify(&cached.key)
    {
        return Ok(cached);
    }
    let fetcher = super::fetcher(state).map_err(InboxError::Internal)?;
    let signer = super::instance_signer(state)
        .await
        .map_err(InboxError::Internal)?;
    let fresh = remote_keys::fetch(&state.db, fetcher, &signer, &signed.key_id).await?;
    if signed.verify(&fresh.key) {
        Ok(fresh)
    } else {
        Err(InboxError::BadSignature(signed.key_id.clone()))
    }
}
