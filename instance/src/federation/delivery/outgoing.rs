//! What local actions send, and to whom: the `federation.send` job turns an [`Outgoing`]
//! into its activity and its inboxes (read at run time, so the API does one Redis write),
//! then queues one `federation.deliver` job per inbox. Mastodon's `DistributionWorker`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::chrono::Utc;
use tracing::{info, warn};

use super::{activities, deliver};
use crate::federation::documents::{actor, note};
use crate::federation::keys;
use crate::federation::urls;
use crate::jobs::{self, JobError, Queue};
use crate::state::AppState;

pub const KIND: &str = "federation.send";
/// Building an activity needs the database only: a short back-off is enough.
pub const MAX_RETRIES: u32 = 8;

/// A local action that other servers must hear of.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outgoing {
    /// A new status (`Create`) or reblog (`Announce`).
    Status { status_id: i64 },
    /// An edited status (`Update`).
    StatusUpdate { status_id: i64 },
    /// A deleted status (`Delete`) or reblog (`Undo` `Announce`), described before deletion.
    StatusDelete(Deleted),
    Like {
        account_id: i64,
        status_id: i64,
        undo: bool,
    },
    Follow {
        account_id: i64,
        target_id: i64,
        undo: bool,
    },
    Block {
        account_id: i64,
        target_id: i64,
        undo: bool,
    },
    /// `Accept` (or `Reject`) of the `Follow` `follow_uri` of remote `follower_id` to the
    /// local `account_id`.
    FollowAnswer {
        account_id: i64,
        follower_id: i64,
        follow_uri: String,
        accept: bool,
    },
    /// A profile change (`Update` of the actor).
    Profile { account_id: i64 },
}

/// What a deleted status's `Delete` needs once the row is gone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deleted {
    account_id: i64,
    username: String,
    status_id: i64,
    visibility: String,
    /// The reblogged status's URI, for a reblog.
    reblogged: Option<String>,
    /// Remote accounts addressed besides the followers (mentioned, reblogged author).
    accounts: Vec<i64>,
}

#[derive(sqlx::FromRow)]
struct ToDelete {
    account_id: i64,
    username: String,
    visibility: String,
    reblog_of_id: Option<i64>,
    reblogged_uri: Option<String>,
    reblogged_author: Option<i64>,
    reblogged_username: Option<String>,
}

/// Who receives an activity.
#[derive(Debug, Default)]
struct Audience {
    /// The remote followers of this account.
    followers_of: Option<i64>,
    /// These accounts (local ones are ignored).
    accounts: Vec<i64>,
    /// Personal inboxes rather than shared ones: for activities about one account.
    personal: bool,
}

/// Queues `what`. The action has committed and must not fail now: a failure is logged and
/// the peers miss this one.
pub async fn send(state: &AppState, what: Outgoing) {
    if let Outgoing::Status { status_id } = what
        && !has_remote_audience(state, status_id).await
    {
        return;
    }
    let args = serde_json::to_value(&what).expect("job arguments serialize");
    if let Err(e) = jobs::enqueue(state, Queue::Push, KIND, args).await {
        warn!(error = %e, "cannot queue a federation job");
    }
}

/// Whether new status (or reblog) `id` has a remote account to deliver to: a follower of
/// its author (unless direct), a mentioned or replied-to account, the reblogged author (the
/// audience `build` and `inboxes` find). Most posts on a small instance have none, and a
/// `federation.send` job each would load the `push` queue with no-ops. When the answer
/// cannot be had, the job is queued: it decides again.
async fn has_remote_audience(state: &AppState, id: i64) -> bool {
    let found: Result<bool, sqlx::Error> = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM accounts a \
           WHERE a.domain IS NOT NULL AND a.inbox_url IS NOT NULL AND a.suspended_at IS NULL \
             AND a.id IN ( \
               SELECT f.account_id FROM statuses s \
                 JOIN follows f ON f.target_account_id = s.account_id \
               WHERE s.id = $1 AND s.visibility <> 'direct' \
               UNION ALL SELECT m.account_id FROM mentions m WHERE m.status_id = $1 \
               UNION ALL SELECT p.account_id FROM statuses s \
                 JOIN statuses p ON p.id IN (s.in_reply_to_id, s.reblog_of_id) \
               WHERE s.id = $1))",
    )
    .bind(id)
    .fetch_one(state.db.primary())
    .await;
    found.unwrap_or_else(|e| {
        warn!(error = %e, status = id, "cannot tell whether a status has remote recipients");
        true
    })
}

/// Reads what [`Outgoing::StatusDelete`] needs about local status `id` before it is
/// deleted; `None` for a status that is not local or does not exist.
pub async fn prepare_delete(state: &AppState, id: i64) -> Option<Outgoing> {
    let result: Result<Option<Deleted>, sqlx::Error> = async {
        let row: Option<ToDelete> = sqlx::query_as(
            "SELECT s.account_id, a.username, s.visibility, s.reblog_of_id, \
                    r.uri AS reblogged_uri, r.account_id AS reblogged_author, \
                    ra.username AS reblogged_username \
             FROM statuses s JOIN accounts a ON a.id = s.account_id \
             LEFT JOIN statuses r ON r.id = s.reblog_of_id \
             LEFT JOIN accounts ra ON ra.id = r.account_id \
             WHERE s.id = $1 AND a.domain IS NULL",
        )
        .bind(id)
        .fetch_optional(state.db.primary())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        // Remote originals have their URI; local ones derive it from their id.
        let reblogged = match (row.reblog_of_id, row.reblogged_uri, &row.reblogged_username) {
            (Some(_), Some(uri), _) => Some(uri),
            (Some(original), None, Some(author)) => Some(urls::status(state, author, original)),
            _ => None,
        };
        let (account_id, username, visibility, reblogged_author) = (
            row.account_id,
            row.username,
            row.visibility,
            row.reblogged_author,
        );
        let mut accounts: Vec<i64> =
            sqlx::query_scalar("SELECT account_id FROM mentions WHERE status_id = $1")
                .bind(id)
                .fetch_all(state.db.primary())
                .await?;
        accounts.extend(reblogged_author);
        Ok(Some(Deleted {
            account_id,
            username,
            status_id: id,
            visibility,
            reblogged,
            accounts,
        }))
    }
    .await;
    match result {
        Ok(d) => d.map(Outgoing::StatusDelete),
        Err(e) => {
            warn!(error = %e, status = id, "cannot prepare the federation of a deletion");
            None
        }
    }
}

pub async fn run(state: AppState, args: serde_json::Value) -> Result<(), JobError> {
    let what: Outgoing = jobs::args(args)?;
    // The extensions the object uses (`toot:`, `schema:`), for peers that expand JSON-LD.
    let context = match &what {
        Outgoing::Status { .. } | Outgoing::StatusUpdate { .. } => Some(note::context()),
        Outgoing::Profile { .. } => Some(actor::context()),
        _ => None,
    };
    let Some((account_id, activity, audience)) = build(&state, what).await? else {
        return Ok(());
    };
    let inboxes = inboxes(&state, &audience).await?;
    let activity = activities::with_context(activity, context);
    for inbox in &inboxes {
        let delivery = deliver::Delivery {
            account_id,
            inbox: inbox.clone(),
            activity: activity.clone(),
        };
        jobs::enqueue(
            &state,
            Queue::Push,
            deliver::KIND,
            serde_json::to_value(&delivery)?,
        )
        .await?;
    }
    Ok(())
}

/// A local account's actor URI.
async fn local_actor(state: &AppState, id: i64) -> Result<Option<String>, sqlx::Error> {
    let username: Option<String> =
        sqlx::query_scalar("SELECT username FROM accounts WHERE id = $1 AND domain IS NULL")
            .bind(id)
            .fetch_optional(state.db.reader())
            .await?;
    Ok(username.map(|u| urls::actor(state, &u)))
}

/// A remote account's actor URI; `None` for a local or unknown account.
async fn remote_actor(state: &AppState, id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT uri FROM accounts WHERE id = $1 AND domain IS NOT NULL")
        .bind(id)
        .fetch_optional(state.db.reader())
        .await
        .map(Option::flatten)
}

/// The activity of `what`, its signing account and audience; `None` when no peer needs it.
async fn build(
    state: &AppState,
    what: Outgoing,
) -> Result<Option<(i64, Value, Audience)>, JobError> {
    Ok(match what {
        Outgoing::Status { status_id } | Outgoing::StatusUpdate { status_id } => {
            let update = matches!(what, Outgoing::StatusUpdate { .. });
            let author: Option<(i64, String)> = sqlx::query_as(
                "SELECT a.id, a.username FROM statuses s JOIN accounts a ON a.id = s.account_id \
                 WHERE s.id = $1 AND a.domain IS NULL",
            )
            .bind(status_id)
            .fetch_optional(state.db.reader())
            .await?;
            let Some((account_id, username)) = author else {
                return Ok(None);
            };
            let Some(row) = note::find(state, &username, status_id).await? else {
                return Ok(None);
            };
            let mut accounts = status_audience(state, status_id).await?;
            if let Some(original) = row.reblog_of_id {
                accounts.extend(author_of(state, original).await?);
            }
            let activity = if update {
                let object = note::note(state, &row).await?;
                let version = row.edited_at.unwrap_or_else(Utc::now).timestamp_millis();
                activities::update(&urls::actor(state, &username), object, version)
            } else {
                note::activity(state, &row).await?
            };
            let audience = Audience {
                followers_of: (row.visibility != "direct").then_some(account_id),
                accounts,
                personal: false,
            };
            Some((account_id, activity, audience))
        }
        Outgoing::StatusDelete(d) => {
            let actor = urls::actor(state, &d.username);
            let activity = match &d.reblogged {
                Some(original) => {
                    let announce = json!({
                        "id": format!("{}/activity", urls::status(state, &d.username, d.status_id)),
                        "type": "Announce",
                        "actor": actor,
                        "object": original,
                    });
                    activities::undo(&actor, announce)
                }
                None => activities::delete_status(
                    &actor,
                    &urls::status(state, &d.username, d.status_id),
                ),
            };
            let audience = Audience {
                followers_of: (d.visibility != "direct").then_some(d.account_id),
                accounts: d.accounts,
                personal: false,
            };
            Some((d.account_id, activity, audience))
        }
        Outgoing::Like {
            account_id,
            status_id,
            undo,
        } => {
            let target: Option<(i64, Option<String>)> = sqlx::query_as(
                "SELECT a.id, s.uri FROM statuses s JOIN accounts a ON a.id = s.account_id \
                 WHERE s.id = $1 AND a.domain IS NOT NULL",
            )
            .bind(status_id)
            .fetch_optional(state.db.reader())
            .await?;
            let (Some((author, Some(uri))), Some(actor)) =
                (target, local_actor(state, account_id).await?)
            else {
                return Ok(None);
            };
            let like = activities::like(&actor, status_id, &uri);
            let activity = if undo {
                activities::undo(&actor, like)
            } else {
                like
            };
            Some((account_id, activity, one(author)))
        }
        Outgoing::Follow {
            account_id,
            target_id,
            undo,
        }
        | Outgoing::Block {
            account_id,
            target_id,
            undo,
        } => {
            if matches!(what, Outgoing::Follow { undo: false, .. }) {
                refresh(state, target_id).await?;
            }
            let (Some(actor), Some(target)) = (
                local_actor(state, account_id).await?,
                remote_actor(state, target_id).await?,
            ) else {
                return Ok(None);
            };
            let activity = if matches!(what, Outgoing::Follow { .. }) {
                activities::follow(&actor, target_id, &target)
            } else {
                activities::block(&actor, target_id, &target)
            };
            let activity = if undo {
                activities::undo(&actor, activity)
            } else {
                activity
            };
            Some((account_id, activity, one(target_id)))
        }
        Outgoing::FollowAnswer {
            account_id,
            follower_id,
            follow_uri,
            accept,
        } => {
            let (Some(actor), Some(follower)) = (
                local_actor(state, account_id).await?,
                remote_actor(state, follower_id).await?,
            ) else {
                return Ok(None);
            };
            let kind = if accept { "Accept" } else { "Reject" };
            let activity =
                activities::answer_follow(kind, &actor, follower_id, &follower, &follow_uri);
            Some((account_id, activity, one(follower_id)))
        }
        Outgoing::Profile { account_id } => {
            let username: Option<String> = sqlx::query_scalar(
                "SELECT username FROM accounts WHERE id = $1 AND domain IS NULL",
            )
            .bind(account_id)
            .fetch_optional(state.db.reader())
            .await?;
            let Some(username) = username else {
                return Ok(None);
            };
            let Some(account) = actor::find_local(state, &username).await? else {
                return Ok(None);
            };
            let pair = keys::account_key(&state.db, account_id).await?;
            let mut person = actor::person(state, &account, &pair.public_pem);
            if let Some(map) = person.as_object_mut() {
                map.remove("@context");
            }
            let actor_uri = urls::actor(state, &username);
            let mut activity =
                activities::update(&actor_uri, person, Utc::now().timestamp_millis());
            activity["to"] = json!([urls::PUBLIC]);
            activity["cc"] = json!([]);
            let audience = Audience {
                followers_of: Some(account_id),
                ..Audience::default()
            };
            Some((account_id, activity, audience))
        }
    })
}

/// Fetches a remote account's actor again when it is stale or was never fetched (an
/// account known from a mention has no inbox yet): a follow must reach its current inbox.
/// A peer that cannot be reached now is retried with the job.
async fn refresh(state: &AppState, account_id: i64) -> Result<(), JobError> {
    let uri: Option<String> = remote_actor(state, account_id).await?;
    let Some(uri) = uri else { return Ok(()) };
    match crate::federation::remote::actor::by_uri(state, &uri).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_transient() => Err(JobError::retry(e)),
        Err(e) => {
            warn!(error = %e, uri, "cannot refresh the actor of a follow; using the stored one");
            Ok(())
        }
    }
}

fn one(account: i64) -> Audience {
    Audience {
        followers_of: None,
        accounts: vec![account],
        personal: true,
    }
}

/// Accounts a status addresses besides the followers: the mentioned, and the author of
/// the status it replies to.
async fn status_audience(state: &AppState, status_id: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT account_id FROM mentions WHERE status_id = $1 \
         UNION SELECT p.account_id FROM statuses s JOIN statuses p ON p.id = s.in_reply_to_id \
               WHERE s.id = $1",
    )
    .bind(status_id)
    .fetch_all(state.db.reader())
    .await
}

async fn author_of(state: &AppState, status_id: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT account_id FROM statuses WHERE id = $1")
        .bind(status_id)
        .fetch_optional(state.db.reader())
        .await
}

/// The distinct inboxes of `audience`: each remote account's shared inbox where it has one
/// (one POST per server, however many followers there), minus unavailable domains.
async fn inboxes(state: &AppState, audience: &Audience) -> Result<Vec<String>, sqlx::Error> {
    let candidates: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT CASE WHEN $3 THEN a.inbox_url \
                              ELSE coalesce(nullif(a.shared_inbox_url, ''), a.inbox_url) END \
         FROM accounts a \
         WHERE a.domain IS NOT NULL AND a.inbox_url IS NOT NULL AND a.suspended_at IS NULL \
           AND (a.id = ANY($1) \
                OR ($2::bigint IS NOT NULL AND a.id IN \
                    (SELECT account_id FROM follows WHERE target_account_id = $2)))",
    )
    .bind(&audience.accounts)
    .bind(audience.followers_of)
    .bind(audience.personal)
    .fetch_all(state.db.reader())
    .await?;
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let domains: Vec<String> = candidates
        .iter()
        .filter_map(|i| crate::federation::remote::origin(i))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let unavailable: BTreeSet<String> =
        sqlx::query_scalar("SELECT domain FROM unavailable_domains WHERE domain = ANY($1)")
            .bind(&domains)
            .fetch_all(state.db.reader())
            .await?
            .into_iter()
            .collect();
    let (kept, dropped): (Vec<String>, Vec<String>) = candidates.into_iter().partition(|i| {
        crate::federation::remote::origin(i).is_some_and(|d| !unavailable.contains(&d))
    });
    if !dropped.is_empty() {
        info!(
            count = dropped.len(),
            "deliveries to unavailable domains dropped"
        );
    }
    Ok(kept)
}
