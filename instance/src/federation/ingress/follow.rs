//! Follow, Accept and Reject (of our Follow), Block, and Undo of a Follow, Like, Announce
//! or Block.

use serde_json::Value;

use super::context::{Ctx, Refused};
use super::{parse, status};
use crate::api::notifications::notify::{Cause, notify};
use crate::federation::delivery::{self, IncomingFollow};
use crate::tasks::timeline::{self, Relation};

/// A remote actor follows a local account: a follow, or a request when the account is
/// locked; the follow is accepted at once when it is not.
pub async fn follow(ctx: &Ctx<'_>) -> Result<(), Refused> {
    let target_uri = parse::id_of(ctx.object()).ok_or(Refused::Rule("Follow of nothing".into()))?;
    let Some(target) = ctx.local_account(target_uri).await? else {
        return Err(Refused::Ignored(format!(
            "{target_uri} is not a local account"
        )));
    };
    let uri = ctx
        .id()
        .ok_or(Refused::Rule("Follow without an id".into()))?
        .to_string();
    let db = ctx.state.db.primary();
    let (locked, blocked): (bool, bool) = sqlx::query_as(
        "SELECT a.locked, EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = a.id \
                                  AND b.target_account_id = $2) \
         FROM accounts a WHERE a.id = $1",
    )
    .bind(target)
    .bind(ctx.actor_id)
    .fetch_one(db)
    .await?;
    let answer = IncomingFollow {
        follower_id: ctx.actor_id,
        target_id: target,
        uri: uri.clone(),
    };
    if blocked {
        delivery::reject_follow(ctx.state, &answer).await;
        return Ok(());
    }
    let following: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM follows WHERE account_id = $1 AND target_account_id = $2)",
    )
    .bind(ctx.actor_id)
    .bind(target)
    .fetch_one(db)
    .await?;
    if following {
        // Their side lost our Accept: Mastodon answers again, keeping the follow.
        sqlx::query("UPDATE follows SET uri = $3 WHERE account_id = $1 AND target_account_id = $2")
            .bind(ctx.actor_id)
            .bind(target)
            .bind(&uri)
            .execute(db)
            .await?;
        delivery::accept_follow(ctx.state, &answer).await;
        return Ok(());
    }
    if locked {
        sqlx::query(
            "INSERT INTO follow_requests (account_id, target_account_id, uri) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, target_account_id) DO UPDATE SET uri = EXCLUDED.uri",
        )
        .bind(ctx.actor_id)
        .bind(target)
        .bind(&uri)
        .execute(db)
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO follows (account_id, target_account_id, uri) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, target_account_id) DO NOTHING",
        )
        .bind(ctx.actor_id)
        .bind(target)
        .bind(&uri)
        .execute(db)
        .await?;
        delivery::accept_follow(ctx.state, &answer).await;
    }
    notify(
        ctx.state,
        Cause::Follow {
            follower: ctx.actor_id,
            target,
        },
    )
    .await;
    Ok(())
}

/// The local follower of an Accept or Reject: from the embedded Follow's actor, or from our
/// Follow ids (`<actor>#follows/<target id>`).
async fn our_follower(ctx: &Ctx<'_>) -> Result<i64, Refused> {
    let object = ctx.object();
    let follower_uri = match object.get("actor").and_then(parse::id_of) {
        Some(actor) => actor.to_string(),
        None => parse::id_of(object)
            .and_then(|id| id.split_once("#follows/"))
            .map(|(actor, _)| actor.to_string())
            .ok_or(Refused::Ignored(
                "not the answer to one of our Follows".into(),
            ))?,
    };
    if let Some(target) = object.get("object").and_then(parse::id_of)
        && target != ctx.actor_uri
    {
        return Err(Refused::Rule("answer to a Follow of someone else".into()));
    }
    ctx.local_account(&follower_uri)
        .await?
        .ok_or(Refused::Ignored(format!(
            "{follower_uri} is not a local account"
        )))
}

/// Accept (or Reject) of a local account's Follow of the actor.
pub async fn accept(ctx: &Ctx<'_>, accepted: bool) -> Result<(), Refused> {
    let follower = our_follower(ctx).await?;
    let mut tx = ctx.state.db.begin().await?;
    let request: Option<(bool, bool, Option<Vec<String>>)> = sqlx::query_as(
        "DELETE FROM follow_requests WHERE account_id = $1 AND target_account_id = $2 \
         RETURNING show_reblogs, notify, languages",
    )
    .bind(follower)
    .bind(ctx.actor_id)
    .fetch_optional(&mut *tx)
    .await?;
    if accepted {
        if let Some((show_reblogs, notify, languages)) = request {
            sqlx::query(
                "INSERT INTO follows (account_id, target_account_id, show_reblogs, notify, \
                     languages) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (account_id, target_account_id) DO NOTHING",
            )
            .bind(follower)
            .bind(ctx.actor_id)
            .bind(show_reblogs)
            .bind(notify)
            .bind(languages)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        timeline::refill(ctx.state, follower).await;
    } else {
        // A Reject also ends an accepted follow (Mastodon: the target removed a follower).
        let removed =
            sqlx::query("DELETE FROM follows WHERE account_id = $1 AND target_account_id = $2")
                .bind(follower)
                .bind(ctx.actor_id)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        if removed.rows_affected() > 0 {
            timeline::enqueue_relation(ctx.state, Relation::Unfollow, follower, ctx.actor_id).await;
        }
    }
    Ok(())
}

/// The actor blocks a local account: the block is recorded (it hides the local account's
/// posts from them) and follows both ways end.
pub async fn block(ctx: &Ctx<'_>) -> Result<(), Refused> {
    let target_uri = parse::id_of(ctx.object()).ok_or(Refused::Rule("Block of nothing".into()))?;
    let Some(target) = ctx.local_account(target_uri).await? else {
        return Err(Refused::Ignored(format!(
            "{target_uri} is not a local account"
        )));
    };
    let mut tx = ctx.state.db.begin().await?;
    sqlx::query(
        "INSERT INTO blocks (account_id, target_account_id) VALUES ($1, $2) \
         ON CONFLICT (account_id, target_account_id) DO NOTHING",
    )
    .bind(ctx.actor_id)
    .bind(target)
    .execute(&mut *tx)
    .await?;
    for query in [
        "DELETE FROM follows WHERE (account_id = $1 AND target_account_id = $2) \
            OR (account_id = $2 AND target_account_id = $1)",
        "DELETE FROM follow_requests WHERE (account_id = $1 AND target_account_id = $2) \
            OR (account_id = $2 AND target_account_id = $1)",
    ] {
        sqlx::query(query)
            .bind(ctx.actor_id)
            .bind(target)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    timeline::enqueue_relation(ctx.state, Relation::Unfollow, target, ctx.actor_id).await;
    Ok(())
}

/// Undo of one of the actor's own activities.
pub async fn undo(ctx: &Ctx<'_>) -> Result<(), Refused> {
    let object = ctx.object();
    let undone_id = parse::id_of(object).ok_or(Refused::Rule("Undo of nothing".into()))?;
    if !crate::federation::remote::same_origin(undone_id, ctx.actor_uri) {
        return Err(Refused::Rule(format!("{undone_id} is not the actor's")));
    }
    // Only an embedded activity says what it was; a bare id is looked up among what
    // activities leave behind with their ids (reblogs, follows).
    let kind = parse::type_of(object);
    if let Some(actor) = object.get("actor").and_then(parse::id_of)
        && actor != ctx.actor_uri
    {
        return Err(Refused::Rule("Undo of someone else's activity".into()));
    }
    let inner_object = object.get("object").unwrap_or(&Value::Null);
    let db = ctx.state.db.primary();
    match kind {
        Some("Follow") => {
            let target = match parse::id_of(inner_object) {
                Some(uri) => ctx.local_account(uri).await?,
                None => None,
            };
            let Some(target) = target else {
                return Err(Refused::Ignored(
                    "Undo of a Follow of no local account".into(),
                ));
            };
            sqlx::query(
                "DELETE FROM follow_requests WHERE account_id = $1 AND target_account_id = $2",
            )
            .bind(ctx.actor_id)
            .bind(target)
            .execute(db)
            .await?;
            sqlx::query("DELETE FROM follows WHERE account_id = $1 AND target_account_id = $2")
                .bind(ctx.actor_id)
                .bind(target)
                .execute(db)
                .await?;
            Ok(())
        }
        Some("Like") => {
            let status = match parse::id_of(inner_object) {
                Some(uri) => ctx.status_by_uri(uri).await?,
                None => None,
            };
            if let Some(status) = status {
                sqlx::query("DELETE FROM favourites WHERE account_id = $1 AND status_id = $2")
                    .bind(ctx.actor_id)
                    .bind(status)
                    .execute(db)
                    .await?;
            }
            Ok(())
        }
        Some("Block") => {
            let target = match parse::id_of(inner_object) {
                Some(uri) => ctx.local_account(uri).await?,
                None => None,
            };
            if let Some(target) = target {
                sqlx::query("DELETE FROM blocks WHERE account_id = $1 AND target_account_id = $2")
                    .bind(ctx.actor_id)
                    .bind(target)
                    .execute(db)
                    .await?;
            }
            Ok(())
        }
        Some("Announce") | None => status::unreblog(ctx, undone_id).await,
        Some(other) => Err(Refused::Ignored(format!("Undo of {other}"))),
    }
}
