//! Polls: reading one, voting, and telling voters and authors that a poll ended. Polls are
//! created and edited with their status ([`params`], [`store`]).

pub mod params;
pub mod store;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;
use tracing::warn;

use crate::api::ApiError;
use crate::api::entities::poll::{Poll, load_polls};
use crate::api::entities::status::status_visible;
use crate::api::notifications::{Cause, notify};
use crate::api::params::{Params, flex};
use crate::auth::{Auth, MaybeAuth};
use crate::state::AppState;

/// How many ended polls one pass notifies about.
const ENDED_BATCH: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/polls/{id}", get(show))
        .route("/api/v1/polls/{id}/votes", post(vote))
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

#[derive(sqlx::FromRow)]
struct PollRef {
    status_id: i64,
    account_id: i64,
    options: i32,
    multiple: bool,
    expired: bool,
}

/// The poll `id` if `viewer` may see its status, else 404.
async fn visible_poll(
    db: impl sqlx::PgExecutor<'_>,
    id: i64,
    viewer: Option<i64>,
) -> Result<PollRef, ApiError> {
    sqlx::query_as(concat!(
        "SELECT p.status_id, p.account_id, cardinality(p.options) AS options, p.multiple, \
                coalesce(p.expires_at <= now(), false) AS expired \
         FROM polls p JOIN statuses s ON s.id = p.status_id WHERE p.id = $1 AND ",
        status_visible!("s", "$2::bigint")
    ))
    .bind(id)
    .bind(viewer)
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::NotFound)
}

async fn poll_json(
    state: &AppState,
    status_id: i64,
    viewer: Option<i64>,
) -> Result<Poll, ApiError> {
    load_polls(state.db.primary(), &[status_id], viewer)
        .await?
        .remove(&status_id)
        .ok_or(ApiError::NotFound)
}

pub async fn show(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(id): Path<String>,
) -> Result<Json<Poll>, ApiError> {
    let viewer = match &auth.0 {
        Some(auth) => {
            auth.require("read:statuses")?;
            auth.user.as_ref().map(|u| u.account_id)
        }
        None => None,
    };
    let poll = visible_poll(state.db.primary(), parse_id(&id)?, viewer).await?;
    notify_ended(&state).await;
    Ok(Json(poll_json(&state, poll.status_id, viewer).await?))
}

#[derive(Debug, Default, Deserialize)]
pub struct VoteParams {
    #[serde(default, deserialize_with = "flex::list")]
    choices: Vec<String>,
}

/// Mastodon's `VoteService` and `VoteValidator`, with their messages and in their order:
/// the poll has ended, an option does not exist, it is the voter's own poll, they voted
/// already (on a single-choice poll at all, on a multiple-choice one for that option).
/// All the choices are recorded or none.
pub async fn vote(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params { value: p, .. }: Params<VoteParams>,
) -> Result<Json<Poll>, ApiError> {
    auth.require("write:statuses")?;
    let me = auth.user()?.account_id;
    let id = parse_id(&id)?;
    if p.choices.is_empty() {
        return Err(ApiError::validation("choices", "can't be blank"));
    }
    let mut tx = state.db.begin().await?;
    // One vote of an account on a poll at a time: a single-choice poll cannot be given two
    // answers by two requests at once.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('fedi:vote:' || $1 || ':' || $2, 0))",
    )
    .bind(id)
    .bind(me)
    .execute(&mut *tx)
    .await?;
    let poll = visible_poll(&mut *tx, id, Some(me)).await?;
    let (blocking,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE account_id = $1 AND target_account_id = $2)",
    )
    .bind(me)
    .bind(poll.account_id)
    .fetch_one(&mut *tx)
    .await?;
    if blocking {
        return Err(ApiError::Forbidden);
    }
    if poll.expired {
        return Err(ApiError::Validation("The poll has already ended".into()));
    }
    let choices: Vec<i32> = p
        .choices
        .iter()
        .map(|c| {
            c.trim()
                .parse::<i32>()
                .ok()
                .filter(|n| (0..poll.options).contains(n))
        })
        .collect::<Option<_>>()
        .ok_or_else(|| ApiError::Validation("The chosen vote option does not exist".into()))?;
    if poll.account_id == me {
        return Err(ApiError::Validation(
            "You cannot vote in your own polls".into(),
        ));
    }
    let earlier: Vec<i32> =
        sqlx::query_scalar("SELECT choice FROM poll_votes WHERE poll_id = $1 AND account_id = $2")
            .bind(id)
            .bind(me)
            .fetch_all(&mut *tx)
            .await?;
    let mut distinct = choices.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let again = if poll.multiple {
        distinct.len() != choices.len() || choices.iter().any(|c| earlier.contains(c))
    } else {
        !earlier.is_empty() || choices.len() > 1
    };
    if again {
        return Err(ApiError::Validation(
            "You have already voted on this poll".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO poll_votes (poll_id, account_id, choice) SELECT $1, $2, unnest($3::int[])",
    )
    .bind(id)
    .bind(me)
    .bind(&choices)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(poll_json(&state, poll.status_id, Some(me)).await?))
}

/// Notifies the voters and authors of polls that have ended and were not notified yet.
/// Without a scheduler, the API calls this when someone may be waiting for these
/// notifications (reading notifications or a poll); a worker can call it on a timer. Safe
/// to run anywhere at once: each poll is claimed by one statement.
pub async fn notify_ended(state: &AppState) {
    let ended: Result<Vec<i64>, sqlx::Error> = sqlx::query_scalar(
        "SELECT id FROM polls WHERE ended_notified_at IS NULL AND expires_at <= now() \
         ORDER BY expires_at LIMIT $1",
    )
    .bind(ENDED_BATCH)
    .fetch_all(state.db.primary())
    .await;
    match ended {
        Ok(polls) if polls.is_empty() => {}
        Ok(polls) => notify(state, Cause::PollsEnded { polls }).await,
        Err(e) => warn!(error = %e, "cannot look for ended polls"),
    }
}
