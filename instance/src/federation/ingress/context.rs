//! What every handler works with: the activity, its actor's account, and the outcomes
//! (`Refused`) a job turns into success, a permanent failure, or a retry.

use serde_json::Value;
use tracing::warn;

use crate::federation::remote::actor::{self, ActorError};
use crate::federation::urls;
use crate::state::AppState;

/// The activity types the ingress handles; others are ignored before anything is fetched.
const HANDLED: [&str; 12] = [
    "Follow", "Accept", "Reject", "Undo", "Create", "Update", "Delete", "Announce", "Like",
    "Block", "Flag", "Move",
];

pub fn handled(kind: &str) -> bool {
    HANDLED.contains(&kind)
}

/// Why an activity was not applied.
#[derive(Debug)]
pub enum Refused {
    /// Nothing to do (a type or object we do not handle, a redelivery): not an error.
    Ignored(String),
    /// A broken rule (a forged or foreign object): refused for good.
    Rule(String),
    /// A peer or our database failing: tried again later.
    Retry(anyhow::Error),
}

impl From<sqlx::Error> for Refused {
    fn from(e: sqlx::Error) -> Self {
        Refused::Retry(e.into())
    }
}

impl From<ActorError> for Refused {
    fn from(e: ActorError) -> Self {
        if e.is_transient() {
            Refused::Retry(e.into())
        } else {
            Refused::Rule(e.to_string())
        }
    }
}

pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub activity: &'a Value,
    pub actor_uri: &'a str,
    /// The actor's account (stored, fetched when unknown or a day old).
    pub actor_id: i64,
}

impl<'a> Ctx<'a> {
    pub async fn new(
        state: &'a AppState,
        activity: &'a Value,
        actor_uri: &'a str,
    ) -> Result<Self, Refused> {
        let actor_id = actor::by_uri(state, actor_uri).await?;
        Ok(Self {
            state,
            activity,
            actor_uri,
            actor_id,
        })
    }

    pub fn object(&self) -> &'a Value {
        self.activity.get("object").unwrap_or(&Value::Null)
    }

    pub fn id(&self) -> Option<&'a str> {
        self.activity.get("id").and_then(Value::as_str)
    }

    /// The local account whose actor id is `uri`.
    pub async fn local_account(&self, uri: &str) -> Result<Option<i64>, sqlx::Error> {
        local_account(self.state, uri).await
    }

    /// The status whose ActivityPub id is `uri`: ours (by our URL layout) or a stored one.
    pub async fn status_by_uri(&self, uri: &str) -> Result<Option<i64>, sqlx::Error> {
        status_by_uri(self.state, uri).await
    }
}

/// The local account `https://ours/users/<name>`.
pub async fn local_account(state: &AppState, uri: &str) -> Result<Option<i64>, sqlx::Error> {
    let Some(name) = uri.strip_prefix(&urls::actor(state, "")) else {
        return Ok(None);
    };
    if name.is_empty() || name.contains(['/', '#', '?']) {
        return Ok(None);
    }
    sqlx::query_scalar(
        "SELECT a.id FROM accounts a WHERE a.domain IS NULL AND lower(a.username) = lower($1) \
         AND a.suspended_at IS NULL",
    )
    .bind(name)
    .fetch_optional(state.db.primary())
    .await
}

/// A local status `https://ours/users/<name>/statuses/<id>`, or a remote one by its uri.
pub async fn status_by_uri(state: &AppState, uri: &str) -> Result<Option<i64>, sqlx::Error> {
    if let Some(rest) = uri.strip_prefix(&urls::actor(state, "")) {
        let Some((name, id)) = rest.split_once("/statuses/") else {
            return Ok(None);
        };
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        return sqlx::query_scalar(
            "SELECT s.id FROM statuses s JOIN accounts a ON a.id = s.account_id \
             WHERE s.id = $1 AND a.domain IS NULL AND lower(a.username) = lower($2) \
               AND s.reblog_of_id IS NULL",
        )
        .bind(id)
        .bind(name)
        .fetch_optional(state.db.primary())
        .await;
    }
    sqlx::query_scalar("SELECT id FROM statuses WHERE uri = $1")
        .bind(uri)
        .fetch_optional(state.db.primary())
        .await
}

/// Marks activity `id` as being processed; false when it already was.
pub async fn claim(state: &AppState, id: &str) -> Result<bool, Refused> {
    let claimed = sqlx::query(
        "INSERT INTO processed_activities (uri) VALUES ($1) ON CONFLICT (uri) DO NOTHING",
    )
    .bind(id)
    .execute(state.db.primary())
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// Forgets the claim of an activity that failed, so that its retry runs.
pub async fn release(state: &AppState, id: &str) {
    let released = sqlx::query("DELETE FROM processed_activities WHERE uri = $1")
        .bind(id)
        .execute(state.db.primary())
        .await;
    if let Err(e) = released {
        warn!(error = %e, id, "cannot release a failed activity; its retries will skip it");
    }
}
