//! `GET /api/v1/preferences`: the user's posting defaults (the columns `source` also shows)
//! and reading settings, which this server does not let users change yet.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::api::ApiError;
use crate::auth::Auth;
use crate::state::AppState;

pub async fn show(State(state): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require("read:accounts")?;
    let user = auth.user()?.user_id;
    let (visibility, sensitive, language): (String, bool, Option<String>) = sqlx::query_as(
        "SELECT default_privacy, default_sensitive, default_language FROM users WHERE id = $1",
    )
    .bind(user)
    .fetch_optional(state.db.reader())
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(Json(json!({
        "posting:default:visibility": visibility,
        "posting:default:sensitive": sensitive,
        "posting:default:language": language,
        "reading:expand:media": "default",
        "reading:expand:spoilers": false,
    })))
}
