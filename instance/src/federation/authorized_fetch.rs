//! Who is fetching our documents, from the request's HTTP Signature, and Mastodon's secure
//! mode (`FEDI_FEDERATION_AUTHORIZED_FETCH`): actors' full documents, statuses and
//! collections only for signed requests of servers we federate with. The instance actor,
//! WebFinger, host-meta and NodeInfo stay public (peers need the instance actor's key to
//! verify the signed fetches we make), and so does a reduced actor document with the key
//! (Mastodon's `restrict_fields_to`), so that a peer can verify our deliveries without
//! signing first.
//!
//! Whatever the mode, a signature naming a blocked domain is refused: such a peer gets
//! nothing from us.

use std::time::SystemTime;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::signatures::{self, SignatureError};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum FetchAuthError {
    #[error("Request not signed")]
    Unsigned,
    #[error("{0}")]
    Signature(#[from] SignatureError),
    #[error("Verification failed: {0}")]
    Unverified(String),
    #[error("{0} is blocked by this server")]
    Blocked(String),
}

impl IntoResponse for FetchAuthError {
    fn into_response(self) -> Response {
        let status = match self {
            FetchAuthError::Blocked(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// The verified signer of a GET (`None`: unsigned). Extracting it refuses blocked
/// signers (403) and, in secure mode, signatures that do not verify (401); whether an
/// unsigned request may see the document is each handler's call ([`Fetcher::require`]).
pub struct Fetcher {
    pub signer: Option<String>,
    secure: bool,
}

impl Fetcher {
    /// Secure mode wants a signer; open mode serves everyone.
    pub fn require(&self) -> Result<(), FetchAuthError> {
        if self.secure && self.signer.is_none() {
            return Err(FetchAuthError::Unsigned);
        }
        Ok(())
    }

    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Whether the full document may be served (the reduced actor otherwise).
    pub fn full_access(&self) -> bool {
        !self.secure || self.signer.is_some()
    }
}

impl FromRequestParts<AppState> for Fetcher {
    type Rejection = FetchAuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, FetchAuthError> {
        let secure = state.config.federation.authorized_fetch;
        if !is_signed(&parts.headers) {
            return Ok(Self {
                signer: None,
                secure,
            });
        }
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or(parts.uri.path(), |p| p.as_str());
        let request = signatures::Request {
            method: &parts.method,
            path_and_query,
            headers: &parts.headers,
            body: &[],
            expected_host: &state.config.domain,
        };
        let signed = match signatures::parse(&request, SystemTime::now()) {
            Ok(signed) => signed,
            // Open mode does not care for signatures: a broken one is as good as none.
            Err(_) if !secure => {
                return Ok(Self {
                    signer: None,
                    secure,
                });
            }
            Err(e) => return Err(e.into()),
        };
        super::inbox::refuse_blocked(state, &[&signed.key_id])
            .map_err(|e| FetchAuthError::Blocked(e.to_string()))?;
        if !secure {
            // Verifying costs a key fetch; only secure mode needs to know who it is.
            return Ok(Self {
                signer: None,
                secure,
            });
        }
        let key = super::inbox::verified_key(state, &signed)
            .await
            .map_err(|e| FetchAuthError::Unverified(e.to_string()))?;
        super::inbox::refuse_blocked(state, &[&key.owner])
            .map_err(|e| FetchAuthError::Blocked(e.to_string()))?;
        Ok(Self {
            signer: Some(key.owner),
            secure,
        })
    }
}

fn is_signed(headers: &HeaderMap) -> bool {
    headers.contains_key("signature") || headers.contains_key("signature-input")
}

/// The actor document an unsigned fetch gets in secure mode: what verifying our signatures
/// and delivering to us needs, nothing about the person.
pub fn reduced_actor(actor: &Value) -> Value {
    const KEPT: [&str; 8] = [
        "@context",
        "id",
        "type",
        "preferredUsername",
        "inbox",
        "outbox",
        "publicKey",
        "endpoints",
    ];
    let mut out = serde_json::Map::new();
    for key in KEPT {
        if let Some(v) = actor.get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    Value::Object(out)
}
