//! Fetching and storing remote actors. [`by_uri`] is what other code calls: the stored
//! account when it is less than a day old, else a fresh fetch (the stored copy is kept
//! when the actor's server does not answer).

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::types::chrono::{DateTime, Utc};
use tracing::{debug, warn};

use super::parse::{self, Actor};
use crate::federation::fetch::FetchError;
use crate::federation::{domain_policy, fetcher, instance_signer, remote_keys, urls};
use crate::state::AppState;

/// A stored actor older than this is fetched again (Mastodon: a day).
pub const REFRESH_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    #[error("cannot fetch actor {uri}: {source}")]
    Fetch {
        uri: String,
        #[source]
        source: FetchError,
    },
    #[error("invalid actor {uri}: {reason}")]
    Invalid { uri: String, reason: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ActorError {
    /// Whether trying again later may succeed (a server down, not a bad document).
    pub fn is_transient(&self) -> bool {
        match self {
            ActorError::Fetch { source, .. } => matches!(
                source,
                FetchError::Timeout | FetchError::Network(_) | FetchError::Status(500..=599 | 429)
            ),
            ActorError::Invalid { .. } => false,
            ActorError::Database(_) | ActorError::Internal(_) => true,
        }
    }
}

/// The account of actor `uri`: a local account when the URI is one of ours, else the stored
/// remote account, fetched (again) when absent or older than [`REFRESH_AFTER`].
pub async fn by_uri(state: &AppState, uri: &str) -> Result<i64, ActorError> {
    if let Some(id) = local_account(state, uri).await? {
        return Ok(id);
    }
    let stored: Option<(i64, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT id, fetched_at FROM accounts WHERE uri = $1")
            .bind(uri)
            .fetch_optional(state.db.primary())
            .await?;
    match stored {
        Some((id, Some(at))) if fresh(at) => Ok(id),
        Some((id, _)) => match fetch_and_store(state, uri).await {
            Ok(id) => Ok(id),
            Err(e) => {
                warn!(error = %e, uri, "cannot refresh a remote actor; keeping the stored one");
                Ok(id)
            }
        },
        None => fetch_and_store(state, uri).await,
    }
}

/// The stored account of `uri` without fetching (local or remote).
pub async fn stored(state: &AppState, uri: &str) -> Result<Option<i64>, sqlx::Error> {
    if let Some(id) = local_account(state, uri).await? {
        return Ok(Some(id));
    }
    sqlx::query_scalar("SELECT id FROM accounts WHERE uri = $1")
        .bind(uri)
        .fetch_optional(state.db.primary())
        .await
}

fn fresh(at: DateTime<Utc>) -> bool {
    (Utc::now() - at)
        .to_std()
        .is_ok_and(|age| age < REFRESH_AFTER)
}

/// A local account whose actor id is `uri` (`https://ours/users/name`).
async fn local_account(state: &AppState, uri: &str) -> Result<Option<i64>, sqlx::Error> {
    let prefix = urls::actor(state, "");
    let Some(username) = uri.strip_prefix(&prefix) else {
        return Ok(None);
    };
    if username.is_empty() || username.contains(['/', '#', '?']) {
        return Ok(None);
    }
    sqlx::query_scalar(
        "SELECT id FROM accounts WHERE domain IS NULL AND lower(username) = lower($1)",
    )
    .bind(username)
    .fetch_optional(state.db.primary())
    .await
}

/// Fetches actor `uri` (signed by the instance actor), validates it, stores it as an
/// account (created or updated, by its URI) with its public key; returns the account id.
pub async fn fetch_and_store(state: &AppState, uri: &str) -> Result<i64, ActorError> {
    let fetcher = fetcher(state)?;
    let signer = instance_signer(state).await?;
    let doc = fetcher
        .get_object(uri, &signer)
        .await
        .map_err(|source| ActorError::Fetch {
            uri: uri.to_string(),
            source,
        })?;
    store_document(state, &doc, uri).await
}

/// Validates and stores an actor document already fetched from `uri` (by the guarded
/// fetcher: its id is its URL).
pub async fn store_document(state: &AppState, doc: &Value, uri: &str) -> Result<i64, ActorError> {
    let mut actor = parse::actor(doc, uri).map_err(|reason| ActorError::Invalid {
        uri: uri.to_string(),
        reason,
    })?;
    let treatment = domain_policy::of(state).of_domain(&actor.domain);
    if treatment.refused() {
        return Err(ActorError::Invalid {
            uri: uri.to_string(),
            reason: "its domain is blocked by this server".into(),
        });
    }
    if treatment.rejects_media() {
        // Not even hotlinked: the point of rejecting a domain's media.
        actor.avatar_url = None;
        actor.header_url = None;
    }
    if actor.domain == state.config.domain.to_ascii_lowercase() {
        return Err(ActorError::Invalid {
            uri: uri.to_string(),
            reason: "a remote actor cannot live on this server's domain".into(),
        });
    }
    let id = upsert(state, &actor).await?;
    if treatment.silenced() {
        sqlx::query("UPDATE accounts SET silenced_at = coalesce(silenced_at, now()) WHERE id = $1")
            .bind(id)
            .execute(state.db.primary())
            .await?;
    }
    store_key(state, doc, &actor.uri).await;
    debug!(uri, account = id, "stored a remote actor");
    Ok(id)
}

/// The key published with the actor, cached as if fetched by its id (saves the inbox a
/// fetch). Not fatal: the inbox fetches it when a signature needs it.
async fn store_key(state: &AppState, doc: &Value, owner: &str) {
    let Some(key_id) = doc
        .get("publicKey")
        .and_then(parse::id_of)
        .map(str::to_string)
    else {
        return;
    };
    let Ok((key_owner, pem)) = remote_keys::key_from_document(doc, &key_id) else {
        return;
    };
    if key_owner != owner || !super::same_origin(&key_id, owner) {
        return;
    }
    let stored = sqlx::query(
        "INSERT INTO remote_keys (key_id, owner, public_key_pem) VALUES ($1, $2, $3) \
         ON CONFLICT (key_id) DO UPDATE SET owner = EXCLUDED.owner, \
             public_key_pem = EXCLUDED.public_key_pem, fetched_at = now()",
    )
    .bind(&key_id)
    .bind(owner)
    .bind(&pem)
    .execute(state.db.primary())
    .await;
    if let Err(e) = stored {
        warn!(error = %e, key_id, "cannot cache a remote actor's key");
    }
}

/// Creates or updates the account of `actor`: by URI, or else by `username@domain` (an
/// account known before its URI was, or whose actor id changed). An advisory lock on the
/// handle serializes concurrent jobs storing the same actor.
async fn upsert(state: &AppState, actor: &Actor) -> Result<i64, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let handle = format!("{}@{}", actor.username.to_lowercase(), actor.domain);
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
        .bind(&handle)
        .execute(&mut *tx)
        .await?;
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM accounts WHERE uri = $1 \
         UNION ALL \
         SELECT id FROM accounts WHERE domain = $2 AND lower(username) = lower($3) \
         LIMIT 1",
    )
    .bind(&actor.uri)
    .bind(&actor.domain)
    .bind(&actor.username)
    .fetch_optional(&mut *tx)
    .await?;
    let fields = json!(
        actor
            .fields
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect::<Vec<_>>()
    );
    let moved_to: Option<i64> = match &actor.moved_to {
        Some(uri) => {
            sqlx::query_scalar("SELECT id FROM accounts WHERE uri = $1")
                .bind(uri)
                .fetch_optional(&mut *tx)
                .await?
        }
        None => None,
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO accounts AS a (id, username, domain, display_name, note, locked, bot, \
             discoverable, fields, uri, url, inbox_url, shared_inbox_url, followers_url, \
             following_url, outbox_url, featured_url, actor_type, avatar_remote_url, \
             header_remote_url, fetched_at, moved_to_account_id) \
         VALUES (coalesce($1, fedi_id()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15, $16, $17, $18, $19, $20, now(), $21) \
         ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, \
             display_name = EXCLUDED.display_name, note = EXCLUDED.note, \
             locked = EXCLUDED.locked, bot = EXCLUDED.bot, \
             discoverable = EXCLUDED.discoverable, fields = EXCLUDED.fields, \
             uri = EXCLUDED.uri, url = EXCLUDED.url, inbox_url = EXCLUDED.inbox_url, \
             shared_inbox_url = EXCLUDED.shared_inbox_url, \
             followers_url = EXCLUDED.followers_url, following_url = EXCLUDED.following_url, \
             outbox_url = EXCLUDED.outbox_url, featured_url = EXCLUDED.featured_url, \
             actor_type = EXCLUDED.actor_type, avatar_remote_url = EXCLUDED.avatar_remote_url, \
             header_remote_url = EXCLUDED.header_remote_url, fetched_at = now(), \
             moved_to_account_id = coalesce(EXCLUDED.moved_to_account_id, \
                                            a.moved_to_account_id), \
             updated_at = now() \
         WHERE a.domain = EXCLUDED.domain \
         RETURNING id",
    )
    .bind(existing)
    .bind(&actor.username)
    .bind(&actor.domain)
    .bind(&actor.display_name)
    .bind(&actor.note)
    .bind(actor.locked)
    .bind(matches!(
        actor.actor_type.as_str(),
        "Service" | "Application"
    ))
    .bind(actor.discoverable)
    .bind(fields)
    .bind(&actor.uri)
    .bind(&actor.url)
    .bind(&actor.inbox_url)
    .bind(&actor.shared_inbox_url)
    .bind(&actor.followers_url)
    .bind(&actor.following_url)
    .bind(&actor.outbox_url)
    .bind(&actor.featured_url)
    .bind(&actor.actor_type)
    .bind(&actor.avatar_url)
    .bind(&actor.header_url)
    .bind(moved_to)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}
