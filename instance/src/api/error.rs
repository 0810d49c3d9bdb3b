//! The one error type of the HTTP API, rendered in Mastodon's wire format:
//! `{"error": "..."}` (plus `error_description` for OAuth) with Mastodon's status codes.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Record not found")]
    NotFound,
    /// A missing, unknown, expired or revoked token.
    #[error("The access token is invalid")]
    Unauthorized,
    /// A valid token without the scope the endpoint needs.
    #[error("This action is outside the authorized scopes")]
    OutOfScope,
    #[error("This action is not allowed")]
    Forbidden,
    /// Bad input, naming the field: Mastodon's "Validation failed: ..." form.
    #[error("Validation failed: {0}")]
    Validation(String),
    /// A 422 with Mastodon's own message, which is not a field validation.
    #[error("{0}")]
    Unprocessable(String),
    /// A request that cannot be read at all (malformed body, wrong content type).
    #[error("{0}")]
    BadRequest(String),
    #[error("Too many requests")]
    TooManyRequests,
    /// OAuth endpoints: RFC 6749 error codes (`invalid_grant`...) with a description.
    #[error("{description}")]
    OAuth {
        status: StatusCode,
        code: &'static str,
        description: String,
    },
    /// Anything else: logged with its cause, reported without it.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::OutOfScope | ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::Validation(_) | ApiError::Unprocessable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::OAuth { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn validation(field: &str, problem: &str) -> Self {
        ApiError::Validation(format!("{field} {problem}"))
    }

    pub fn oauth(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        ApiError::OAuth {
            status,
            code,
            description: description.into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::OAuth {
                code, description, ..
            } => json!({"error": code, "error_description": description}),
            ApiError::Internal(cause) => {
                error!(error = ?cause, "request failed");
                json!({"error": self.to_string()})
            }
            _ => json!({"error": self.to_string()}),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750: a client learns from the header which scheme to use.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
    }
}
