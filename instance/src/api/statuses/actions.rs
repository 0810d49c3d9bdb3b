//! What a user does to a status: favourite, reblog, bookmark, pin, and their undoing. Each
//! answers with the status as the user now sees it (a reblog: the new reblog wrapping it).
//! Doing something twice changes nothing, as in Mastodon.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::{StatusRef, me, parse_id, status_json, visible_status};
use crate::api::ApiError;
use crate::api::entities::status::Status;
use crate::api::instance::limits;
use crate::api::notifications::{Cause, notify};
use crate::api::params::Params;
use crate::auth::Auth;
use crate::federation::delivery::Outgoing;
use crate::state::AppState;

/// The status acted upon: a reblog stands for the status it shares, whose id clients
/// usually send anyway.
async fn target(state: &AppState, id: &str, me: i64) -> Result<StatusRef, ApiError> {
    let status = visible_status(state.db.primary(), parse_id(id)?, Some(me)).await?;
    match status.reblog_of_id {
        Some(original) => visible_status(state.db.primary(), original, Some(me)).await,
        None => Ok(status),
    }
}

/// The status after an undo: the row is gone whatever happens, but a status the user may
/// no longer see (they unfollowed its private author) is not shown to them.
async fn after_undo(state: &AppState, id: i64, me: i64) -> Result<Json<Status>, ApiError> {
    Ok(Json(status_json(state, id, Some(me)).await?))
}

pub async fn favourite(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let me = me(&auth, "write:favourites")?;
    let status = target(&state, &id, me).await?;
    let added = sqlx::query(
        "INSERT INTO favourites (account_id, status_id) VALUES ($1, $2) \
         ON CONFLICT (account_id, status_id) DO NOTHING",
    )
    .bind(me)
    .bind(status.id)
    .execute(state.db.primary())
    .await?;
    if added.rows_affected() > 0 {
        notify(
            &state,
            Cause::Favourite {
                account: me,
                status: status.id,
            },
        )
        .await;
        let like = Outgoing::Like {
            account_id: me,
            status_id: status.id,
            undo: false,
        };
        crate::federation::delivery::send(&state, like).await;
    }
    Ok(Json(status_json(&state, status.id, Some(me)).await?))
}

pub async fn unfavourite(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let me = me(&auth, "write:favourites")?;
    let id = parse_id(&id)?;
    let removed: Option<i64> = sqlx::query_scalar(
        "DELETE FROM favourites WHERE account_id = $1 \
           AND status_id = coalesce((SELECT reblog_of_id FROM statuses WHERE id = $2), $2) \
         RETURNING status_id",
    )
    .bind(me)
    .bind(id)
    .fetch_optional(state.db.primary())
    .await?;
    if let Some(status_id) = removed {
        let undo = Outgoing::Like {
            account_id: me,
            status_id,
            undo: true,
        };
        crate::federation::delivery::send(&state, undo).await;
    }
    let status = target(&state, &id.to_string(), me).await?;
    after_undo(&state, status.id, me).await
}

pub async fn bookmark(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let me = me(&auth, "write:bookmarks")?;
    let status = target(&state, &id, me).await?;
    sqlx::query(
        "INSERT INTO bookmarks (account_id, status_id) VALUES ($1, $2) \
         ON CONFLICT (account_id, status_id) DO NOTHING",
    )
    .bind(me)
    .bind(status.id)
    .execute(state.db.primary())
    .await?;
    Ok(Json(status_json(&state, status.id, Some(me)).await?))
}

pub async fn unbookmark(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let me = me(&auth, "write:bookmarks")?;
    let id = parse_id(&id)?;
    sqlx::query(
        "DELETE FROM bookmarks WHERE account_id = $1 \
           AND status_id = coalesce((SELECT reblog_of_id FROM statuses WHERE id = $2), $2)",
    )
    .bind(me)
    .bind(id)
    .execute(state.db.primary())
    .await?;
    let status = target(&state, &id.to_string(), me).await?;
    after_undo(&state, status.id, me).await
}

#[derive(Debug, Default, Deserialize)]
pub struct ReblogParams {
    #[serde(default)]
    visibility: Option<String>,
}

/// Reblogging: Mastodon's `StatusPolicy#reblog?`. Direct statuses never; private ones only
/// by their author (to the same followers); the reblog of a private status stays private.
pub async fn reblog(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params { value: p, .. }: Params<ReblogParams>,
) -> Result<Json<Status>, ApiError> {
    let me = me(&auth, "write:statuses")?;
    let status = target(&state, &id, me).await?;
    let allowed = match status.visibility.as_str() {
        "public" | "unlisted" => true,
        "private" => status.account_id == me,
        _ => false,
    };
    if !allowed {
        return Err(ApiError::Forbidden);
    }
    let requested = match p.visibility.as_deref() {
        None | Some("") => None,
        Some(v @ ("public" | "unlisted" | "private")) => Some(v.to_string()),
        Some(_) => {
            return Err(ApiError::validation(
                "Visibility",
                "is not included in the list",
            ));
        }
    };
    let (default_privacy,): (String,) =
        sqlx::query_as("SELECT default_privacy FROM users WHERE account_id = $1")
            .bind(me)
            .fetch_one(state.db.primary())
            .await?;
    let visibility = if status.visibility == "private" {
        "private".to_string()
    } else {
        match requested {
            Some(v) => v,
            // A default of "direct" makes no sense for a reblog: Mastodon uses public then.
            None if default_privacy == "direct" => "public".to_string(),
            None => default_privacy,
        }
    };
    let added = sqlx::query(
        "INSERT INTO statuses (account_id, reblog_of_id, visibility, application_id) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, reblog_of_id) DO NOTHING",
    )
    .bind(me)
    .bind(status.id)
    .bind(&visibility)
    .bind(auth.application_id)
    .execute(state.db.primary())
    .await?;
    let (reblog_id,): (i64,) =
        sqlx::query_as("SELECT id FROM statuses WHERE account_id = $1 AND reblog_of_id = $2")
            .bind(me)
            .bind(status.id)
            .fetch_one(state.db.primary())
            .await?;
    crate::tasks::timeline::enqueue_fan_out(&state, reblog_id).await;
    if added.rows_affected() > 0 {
        let announce = Outgoing::Status {
            status_id: reblog_id,
        };
        crate::federation::delivery::send(&state, announce).await;
        notify(&state, Cause::Reblog { reblog: reblog_id }).await;
    }
    Ok(Json(status_json(&state, reblog_id, Some(me)).await?))
}

pub async fn unreblog(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let me = me(&auth, "write:statuses")?;
    // The caller may name the original or their reblog of it.
    let original: (i64,) =
        sqlx::query_as("SELECT coalesce(reblog_of_id, id) FROM statuses WHERE id = $1")
            .bind(parse_id(&id)?)
            .fetch_optional(state.db.primary())
            .await?
            .ok_or(ApiError::NotFound)?;
    let reblog: Option<i64> =
        sqlx::query_scalar("SELECT id FROM statuses WHERE account_id = $1 AND reblog_of_id = $2")
            .bind(me)
            .bind(original.0)
            .fetch_optional(state.db.primary())
            .await?;
    let (removal, federated) = match reblog {
        Some(reblog) => (
            crate::tasks::timeline::prepare_removal(&state, reblog).await,
            crate::federation::delivery::prepare_delete(&state, reblog).await,
        ),
        None => (None, None),
    };
    sqlx::query("DELETE FROM statuses WHERE account_id = $1 AND reblog_of_id = $2")
        .bind(me)
        .bind(original.0)
        .execute(state.db.primary())
        .await?;
    crate::tasks::timeline::enqueue_removal(&state, removal).await;
    if let Some(federated) = federated {
        crate::federation::delivery::send(&state, federated).await;
    }
    let status = target(&state, &original.0.to_string(), me).await?;
    after_undo(&state, status.id, me).await
}

/// Pinning: Mastodon's `StatusPinValidator`, with its messages.
pub async fn pin(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let me = me(&auth, "write:accounts")?;
    let status = visible_status(state.db.primary(), parse_id(&id)?, Some(me)).await?;
    if status.reblog_of_id.is_some() {
        return Err(ApiError::Validation("A boost cannot be pinned".into()));
    }
    if status.account_id != me {
        return Err(ApiError::Validation(
            "Someone else's post cannot be pinned".into(),
        ));
    }
    if status.visibility == "direct" {
        return Err(ApiError::Validation(
            "Posts that are only visible to mentioned users cannot be pinned".into(),
        ));
    }
    let mut tx = state.db.begin().await?;
    // Serialises the user's pins, so that two at once cannot pass the limit together.
    sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
        .bind(me)
        .execute(&mut *tx)
        .await?;
    let (pinned, count): (bool, i64) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM status_pins WHERE account_id = $1 AND status_id = $2), \
                (SELECT count(*) FROM status_pins WHERE account_id = $1)",
    )
    .bind(me)
    .bind(status.id)
    .fetch_one(&mut *tx)
    .await?;
    if !pinned {
        if count >= i64::from(limits::MAX_PINNED_STATUSES) {
            return Err(ApiError::Validation(
                "You have already pinned the maximum number of posts".into(),
            ));
        }
        sqlx::query("INSERT INTO status_pins (account_id, status_id) VALUES ($1, $2)")
            .bind(me)
            .bind(status.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Json(status_json(&state, status.id, Some(me)).await?))
}

pub async fn unpin(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let me = me(&auth, "write:accounts")?;
    let id = parse_id(&id)?;
    sqlx::query("DELETE FROM status_pins WHERE account_id = $1 AND status_id = $2")
        .bind(me)
        .bind(id)
        .execute(state.db.primary())
        .await?;
    after_undo(&state, id, me).await
}
