//! Activities about accounts: an actor deleting itself, reports (Flag), moves.

use serde_json::Value;
use tracing::info;

use super::context::{Ctx, Refused, local_account, status_by_uri};
use super::parse;
use crate::federation::remote::actor;
use crate::state::AppState;

/// Statuses whose removal from feeds is queued one by one; the feeds of a larger account
/// keep holes, which reading skips.
const REMOVALS_MAX: i64 = 200;

/// The actor deleted itself: its account goes with everything it made (cascades), never
/// fetched first (it is gone), and nothing happens for an actor we never stored.
pub async fn delete_actor(state: &AppState, actor_uri: &str) -> Result<(), Refused> {
    let account: Option<i64> =
        sqlx::query_scalar("SELECT id FROM accounts WHERE uri = $1 AND domain IS NOT NULL")
            .bind(actor_uri)
            .fetch_optional(state.db.primary())
            .await?;
    let Some(account) = account else {
        return Err(Refused::Ignored(format!("{actor_uri} was never stored")));
    };
    let statuses: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM statuses WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(account)
    .bind(REMOVALS_MAX)
    .fetch_all(state.db.primary())
    .await?;
    let mut removals = Vec::new();
    for id in statuses {
        removals.push(crate::tasks::timeline::prepare_removal(state, id).await);
    }
    sqlx::query("DELETE FROM accounts WHERE id = $1")
        .bind(account)
        .execute(state.db.primary())
        .await?;
    sqlx::query("DELETE FROM remote_keys WHERE owner = $1")
        .bind(actor_uri)
        .execute(state.db.primary())
        .await?;
    for removal in removals {
        crate::tasks::timeline::enqueue_removal(state, removal).await;
    }
    info!(actor_uri, "a remote actor deleted itself");
    Ok(())
}

/// A report about local accounts or statuses, kept for moderators.
pub async fn flag(ctx: &Ctx<'_>) -> Result<(), Refused> {
    let objects = parse::ids(ctx.activity.get("object"));
    let mut target = None;
    let mut statuses = Vec::new();
    for uri in objects.iter().take(100) {
        if let Some(account) = local_account(ctx.state, uri).await? {
            target.get_or_insert(account);
        } else if let Some(status) = status_by_uri(ctx.state, uri).await? {
            statuses.push(status);
        }
    }
    if target.is_none() && !statuses.is_empty() {
        target = sqlx::query_scalar(
            "SELECT a.id FROM statuses s JOIN accounts a ON a.id = s.account_id \
             WHERE s.id = ANY($1) AND a.domain IS NULL LIMIT 1",
        )
        .bind(&statuses)
        .fetch_optional(ctx.state.db.primary())
        .await?;
    }
    let Some(target) = target else {
        return Err(Refused::Ignored("report about nothing local".into()));
    };
    let comment = ctx
        .activity
        .get("content")
        .and_then(Value::as_str)
        .map(|c| parse::truncate(&parse::strip_tags(c), 10_000))
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO reports (account_id, target_account_id, status_ids, comment, uri) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (uri) DO NOTHING",
    )
    .bind(ctx.actor_id)
    .bind(target)
    .bind(&statuses)
    .bind(&comment)
    .bind(ctx.id())
    .execute(ctx.state.db.primary())
    .await?;
    Ok(())
}

/// The actor moved to `target`, which must name it in `alsoKnownAs` (checked on the
/// target's own document, fetched from its server).
pub async fn moved(ctx: &Ctx<'_>) -> Result<(), Refused> {
    if parse::id_of(ctx.object()) != Some(ctx.actor_uri) {
        return Err(Refused::Rule("Move of another actor".into()));
    }
    let target_uri = ctx
        .activity
        .get("target")
        .and_then(parse::id_of)
        .ok_or(Refused::Rule("Move without a target".into()))?;
    let doc = super::objects::fetch(ctx, target_uri).await?;
    let aliases = parse::ids(doc.get("alsoKnownAs"));
    if !aliases.iter().any(|a| a == ctx.actor_uri) {
        return Err(Refused::Rule(format!(
            "{target_uri} does not claim the actor"
        )));
    }
    let target = actor::store_document(ctx.state, &doc, target_uri).await?;
    sqlx::query("UPDATE accounts SET moved_to_account_id = $2 WHERE id = $1")
        .bind(ctx.actor_id)
        .bind(target)
        .execute(ctx.state.db.primary())
        .await?;
    Ok(())
}
