//! Create, Update, Delete, Announce and Like of statuses, and Undo of an Announce.

use serde_json::Value;
use sqlx::types::chrono::{DateTime, Utc};

use super::context::{Ctx, Refused, status_by_uri};
use super::{account, objects, parse};
use crate::api::notifications::notify::{Cause, notify};
pub use crate::federation::remote::note::visibility;
use crate::federation::remote::note::{Content, attachments, hashtags, mention_hrefs};
use crate::federation::remote::{actor, same_origin};
use crate::state::AppState;
use crate::tasks::timeline;

/// Object types stored as statuses (Mastodon's `SUPPORTED_TYPES` and converted ones).
const NOTE_TYPES: [&str; 4] = ["Note", "Question", "Article", "Page"];

/// A remote status was posted: stored, its local mentions notified, fanned out to its
/// author's local followers (and their streams).
pub async fn create(ctx: &Ctx<'_>) -> Result<(), Refused> {
    let object = ctx.object();
    let id = parse::id_of(object).ok_or(Refused::Rule("Create of nothing".into()))?;
    if !same_origin(id, ctx.actor_uri) {
        return Err(Refused::Rule(format!("{id} is not on the actor's server")));
    }
    // On the actor's server, so its embedded copy is as good as a fetch.
    let doc = objects::document(ctx, object).await?;
    if !parse::type_of(&doc).is_some_and(|t| NOTE_TYPES.contains(&t)) {
        return Err(Refused::Ignored(
            "Create of something else than a Note".into(),
        ));
    }
    let stored = store_note(ctx.state, &doc, ctx.actor_id, ctx.actor_uri).await?;
    if !stored.created {
        return Err(Refused::Ignored("status already stored".into()));
    }
    notify(ctx.state, Cause::Posted { status: stored.id }).await;
    timeline::enqueue_fan_out(ctx.state, stored.id).await;
    crate::tasks::remote_status_stored(ctx.state, stored.id).await;
    Ok(())
}

pub struct Stored {
    pub id: i64,
    pub created: bool,
}

/// Stores the Note `doc` (trusted: embedded by its own server or fetched from it) by
/// `author`; an already stored one is left as it is.
pub async fn store_note(
    state: &AppState,
    doc: &Value,
    author_id: i64,
    author_uri: &str,
) -> Result<Stored, Refused> {
    let id = parse::id_of(doc).ok_or(Refused::Rule("Note without an id".into()))?;
    if !same_origin(id, author_uri) {
        return Err(Refused::Rule(format!("{id} is not on its author's server")));
    }
    let attributed = crate::federation::remote::note::author(doc);
    if attributed != Some(author_uri) {
        return Err(Refused::Rule(format!(
            "{id} is not attributed to {author_uri}"
        )));
    }
    if let Some(existing) = status_by_uri(state, id).await? {
        return Ok(Stored {
            id: existing,
            created: false,
        });
    }
    let content = Content::of(doc);
    let followers: Option<String> =
        sqlx::query_scalar("SELECT followers_url FROM accounts WHERE id = $1")
            .bind(author_id)
            .fetch_one(state.db.primary())
            .await?;
    let visibility = visibility(doc, followers.as_deref());
    let reply = match crate::federation::remote::note::in_reply_to(doc) {
        Some(uri) => {
            let parent = match status_by_uri(state, uri).await? {
                Some(id) => Some(id),
                None => resolve_parent(state, uri).await?,
            };
            sqlx::query_as::<_, (i64, i64)>("SELECT id, account_id FROM statuses WHERE id = $1")
                .bind(parent)
                .fetch_optional(state.db.primary())
                .await?
        }
        None => None,
    };
    let published = doc
        .get("published")
        .and_then(Value::as_str)
        .and_then(|p| DateTime::parse_from_rfc3339(p).ok())
        .map(|p| p.with_timezone(&Utc))
        .filter(|p| *p <= Utc::now())
        .unwrap_or_else(Utc::now);
    let mentioned = mentions(state, doc).await?;

    let mut tx = state.db.begin().await?;
    let status_id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO statuses (account_id, uri, url, content_html, spoiler_text, visibility, \
             sensitive, language, in_reply_to_id, in_reply_to_account_id, created_at, local) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, false) \
         ON CONFLICT (uri) DO NOTHING RETURNING id",
    )
    .bind(author_id)
    .bind(id)
    .bind(doc.get("url").and_then(parse::url_of))
    .bind(&content.html)
    .bind(&content.spoiler_text)
    .bind(visibility)
    .bind(content.sensitive)
    .bind(&content.language)
    .bind(reply.map(|r| r.0))
    .bind(reply.map(|r| r.1))
    .bind(published)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(status_id) = status_id else {
        // Another job stored it meanwhile.
        let existing = status_by_uri(state, id).await?.unwrap_or_default();
        return Ok(Stored {
            id: existing,
            created: false,
        });
    };
    for account in &mentioned {
        sqlx::query(
            "INSERT INTO mentions (status_id, account_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(status_id)
        .bind(account)
        .execute(&mut *tx)
        .await?;
    }
    for tag in hashtags(doc) {
        sqlx::query(
            "WITH t AS (INSERT INTO tags (name) VALUES ($2) \
                        ON CONFLICT (lower(name)) DO NOTHING RETURNING id) \
             INSERT INTO statuses_tags (status_id, tag_id) \
             SELECT $1, coalesce((SELECT id FROM t), \
                                 (SELECT id FROM tags WHERE lower(name) = lower($2))) \
             ON CONFLICT DO NOTHING",
        )
        .bind(status_id)
        .bind(&tag)
        .execute(&mut *tx)
        .await?;
    }
    let mut media = Vec::new();
    let reject_media = crate::federation::domain_policy::of(state)
        .of_url(author_uri)
        .rejects_media();
    for mut m in attachments(doc) {
        if reject_media {
            // The instance rejects this domain's media: a bare link, never shown inline.
            m.kind = "unknown";
            m.blurhash = None;
        }
        let media_id: i64 = sqlx::query_scalar(
            "INSERT INTO media_attachments (account_id, status_id, type, remote_url, \
                 content_type, description, blurhash) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING id",
        )
        .bind(author_id)
        .bind(status_id)
        .bind(m.kind)
        .bind(&m.url)
        .bind(&m.content_type)
        .bind(&m.description)
        .bind(&m.blurhash)
        .fetch_one(&mut *tx)
        .await?;
        media.push(media_id);
    }
    sqlx::query("UPDATE statuses SET ordered_media_attachment_ids = $2 WHERE id = $1")
        .bind(status_id)
        .bind(&media)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Stored {
        id: status_id,
        created: true,
    })
}

/// The unknown status `uri` a Note replies to, fetched from its origin and stored with its
/// own parents (Mastodon's thread resolution), so that the reply lands in its thread. A
/// parent that cannot be had leaves the reply without one; running out of the activity's
/// fetch budget stops the whole activity for good (a peer chaining replies without end).
fn resolve_parent<'a>(
    state: &'a AppState,
    uri: &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<i64>, Refused>> + Send + 'a>>
{
    use crate::federation::fetch::FetchError;
    use crate::federation::remote::actor::ActorError;
    let out_of_budget = move |e: &dyn std::fmt::Display| {
        Refused::Rule(format!("cannot resolve the thread of {uri}: {e}"))
    };
    Box::pin(async move {
        let fetcher = crate::federation::fetcher(state).map_err(Refused::Retry)?;
        let signer = crate::federation::instance_signer(state)
            .await
            .map_err(Refused::Retry)?;
        let doc = match fetcher.get_object(uri, &signer).await {
            Ok(doc) => doc,
            Err(e @ FetchError::TooManyFetches(_)) => return Err(out_of_budget(&e)),
            Err(e) => {
                tracing::debug!(error = %e, uri, "reply parent not fetched");
                return Ok(None);
            }
        };
        if !parse::type_of(&doc).is_some_and(|t| NOTE_TYPES.contains(&t)) {
            return Ok(None);
        }
        let Some(author_uri) = crate::federation::remote::note::author(&doc) else {
            return Ok(None);
        };
        let author = match actor::by_uri(state, author_uri).await {
            Ok(id) => id,
            Err(
                e @ ActorError::Fetch {
                    source: FetchError::TooManyFetches(_),
                    ..
                },
            ) => return Err(out_of_budget(&e)),
            Err(e) => {
                tracing::debug!(error = %e, uri, "reply parent's author not fetched");
                return Ok(None);
            }
        };
        match store_note(state, &doc, author, author_uri).await {
            Ok(stored) => Ok(Some(stored.id)),
            Err(Refused::Rule(why)) if why.starts_with("cannot resolve the thread") => {
                Err(Refused::Rule(why))
            }
            Err(Refused::Retry(e)) => Err(Refused::Retry(e)),
            Err(_) => Ok(None),
        }
    })
}

/// The accounts a Note mentions that we know: its `Mention` tags, and local accounts it is
/// addressed to (some servers leave direct messages untagged).
async fn mentions(state: &AppState, doc: &Value) -> Result<Vec<i64>, sqlx::Error> {
    let mut uris: Vec<String> = mention_hrefs(doc);
    uris.extend(parse::ids(doc.get("to")));
    uris.extend(parse::ids(doc.get("cc")));
    let mut found = Vec::new();
    for uri in uris.iter().take(64) {
        if let Some(id) = actor::stored(state, uri).await?
            && !found.contains(&id)
        {
            found.push(id);
        }
    }
    Ok(found)
}

/// Update of a Note (an edit, kept in its history) or of the actor's profile.
pub async fn update(ctx: &Ctx<'_>) -> Result<(), Refused> {
    let object = ctx.object();
    let id = parse::id_of(object).ok_or(Refused::Rule("Update of nothing".into()))?;
    if !same_origin(id, ctx.actor_uri) {
        return Err(Refused::Rule(format!("{id} is not on the actor's server")));
    }
    if id == ctx.actor_uri {
        // The profile, fetched from its origin rather than read from the activity.
        actor::fetch_and_store(ctx.state, ctx.actor_uri).await?;
        return Ok(());
    }
    let doc = objects::document(ctx, object).await?;
    if !parse::type_of(&doc).is_some_and(|t| NOTE_TYPES.contains(&t)) {
        return Err(Refused::Ignored(
            "Update of something else than a Note".into(),
        ));
    }
    let status: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM statuses WHERE uri = $1 AND account_id = $2 AND reblog_of_id IS NULL",
    )
    .bind(id)
    .bind(ctx.actor_id)
    .fetch_optional(ctx.state.db.primary())
    .await?;
    let Some(status) = status else {
        return Err(Refused::Ignored(format!(
            "{id} is not a stored status of the actor"
        )));
    };
    let content = Content::of(&doc);
    let mentioned = mentions(ctx.state, &doc).await?;
    let mut tx = ctx.state.db.begin().await?;
    // The first edit records the original, so that the history lists every version.
    sqlx::query(
        "INSERT INTO status_edits (status_id, account_id, content_html, spoiler_text, \
             sensitive, ordered_media_attachment_ids, created_at) \
         SELECT s.id, s.account_id, s.content_html, s.spoiler_text, s.sensitive, \
                s.ordered_media_attachment_ids, s.created_at FROM statuses s \
         WHERE s.id = $1 AND NOT EXISTS (SELECT 1 FROM status_edits e WHERE e.status_id = s.id)",
    )
    .bind(status)
    .execute(&mut *tx)
    .await?;
    let changed = sqlx::query(
        "UPDATE statuses SET content_html = $2, spoiler_text = $3, sensitive = $4, \
             edited_at = now() \
         WHERE id = $1 AND (content_html, spoiler_text, sensitive) \
               IS DISTINCT FROM ($2, $3, $4)",
    )
    .bind(status)
    .bind(&content.html)
    .bind(&content.spoiler_text)
    .bind(content.sensitive)
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 0 {
        return Err(Refused::Ignored("Update without a change".into()));
    }
    sqlx::query(
        "INSERT INTO status_edits (status_id, account_id, content_html, spoiler_text, \
             sensitive, ordered_media_attachment_ids) \
         SELECT id, account_id, content_html, spoiler_text, sensitive, \
                ordered_media_attachment_ids FROM statuses WHERE id = $1",
    )
    .bind(status)
    .execute(&mut *tx)
    .await?;
    for account in &mentioned {
        sqlx::query(
            "INSERT INTO mentions (status_id, account_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(status)
        .bind(account)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    notify(ctx.state, Cause::Edited { status }).await;
    timeline::enqueue_update(ctx.state, status).await;
    crate::tasks::preview_cards::enqueue_edited(ctx.state, status).await;
    Ok(())
}

/// Delete of one of the actor's statuses (a Tombstone or an id).
pub async fn delete(ctx: &Ctx<'_>) -> Result<(), Refused> {
    let id = parse::id_of(ctx.object()).ok_or(Refused::Rule("Delete of nothing".into()))?;
    if !same_origin(id, ctx.actor_uri) {
        return Err(Refused::Rule(format!("{id} is not on the actor's server")));
    }
    if id == ctx.actor_uri {
        return account::delete_actor(ctx.state, ctx.actor_uri).await;
    }
    let status: Option<i64> =
        sqlx::query_scalar("SELECT id FROM statuses WHERE uri = $1 AND account_id = $2")
            .bind(id)
            .bind(ctx.actor_id)
            .fetch_optional(ctx.state.db.primary())
            .await?;
    let Some(status) = status else {
        return Err(Refused::Ignored(format!(
            "{id} is not a stored status of the actor"
        )));
    };
    remove(ctx.state, status).await
}

async fn remove(state: &AppState, status: i64) -> Result<(), Refused> {
    let removal = timeline::prepare_removal(state, status).await;
    sqlx::query("DELETE FROM statuses WHERE id = $1")
        .bind(status)
        .execute(state.db.primary())
        .await?;
    timeline::enqueue_removal(state, removal).await;
    Ok(())
}

/// A boost: the original (ours, stored, or fetched from its own server whatever the
/// activity embeds) gets a reblog row by the actor, fanned out to the actor's followers.
pub async fn announce(ctx: &Ctx<'_>) -> Result<(), Refused> {
    let uri = ctx
        .id()
        .ok_or(Refused::Rule("Announce without an id".into()))?;
    let object = ctx.object();
    let object_id = parse::id_of(object).ok_or(Refused::Rule("Announce of nothing".into()))?;
    let original = match status_by_uri(ctx.state, object_id).await? {
        Some(id) => id,
        None => {
            let doc = objects::document(ctx, object).await?;
            if !parse::type_of(&doc).is_some_and(|t| NOTE_TYPES.contains(&t)) {
                return Err(Refused::Ignored(
                    "Announce of something else than a Note".into(),
                ));
            }
            let author_uri = crate::federation::remote::note::author(&doc)
                .ok_or(Refused::Rule("Note without an author".into()))?
                .to_string();
            let author = actor::by_uri(ctx.state, &author_uri).await?;
            store_note(ctx.state, &doc, author, &author_uri).await?.id
        }
    };
    let original_visibility: String =
        sqlx::query_scalar("SELECT visibility FROM statuses WHERE id = $1")
            .bind(original)
            .fetch_one(ctx.state.db.primary())
            .await?;
    if !matches!(original_visibility.as_str(), "public" | "unlisted") {
        return Err(Refused::Rule("boost of a status that is not public".into()));
    }
    let followers: Option<String> =
        sqlx::query_scalar("SELECT followers_url FROM accounts WHERE id = $1")
            .bind(ctx.actor_id)
            .fetch_one(ctx.state.db.primary())
            .await?;
    let reblog_visibility = match visibility(ctx.activity, followers.as_deref()) {
        "direct" => "public",
        v => v,
    };
    let reblog: Option<i64> = sqlx::query_scalar(
        "INSERT INTO statuses (account_id, uri, visibility, reblog_of_id, local) \
         VALUES ($1, $2, $3, $4, false) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(ctx.actor_id)
    .bind(uri)
    .bind(reblog_visibility)
    .bind(original)
    .fetch_optional(ctx.state.db.primary())
    .await?;
    let Some(reblog) = reblog else {
        return Err(Refused::Ignored("already boosted".into()));
    };
    notify(ctx.state, Cause::Reblog { reblog }).await;
    timeline::enqueue_fan_out(ctx.state, reblog).await;
    Ok(())
}

/// Undo of a boost, by the Announce's id.
pub async fn unreblog(ctx: &Ctx<'_>, announce: &str) -> Result<(), Refused> {
    let reblog: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM statuses WHERE uri = $1 AND account_id = $2 \
         AND reblog_of_id IS NOT NULL",
    )
    .bind(announce)
    .bind(ctx.actor_id)
    .fetch_optional(ctx.state.db.primary())
    .await?;
    match reblog {
        Some(id) => remove(ctx.state, id).await,
        None => Err(Refused::Ignored(format!("{announce} is no stored boost"))),
    }
}

/// A favourite of a status we have.
pub async fn like(ctx: &Ctx<'_>) -> Result<(), Refused> {
    let id = parse::id_of(ctx.object()).ok_or(Refused::Rule("Like of nothing".into()))?;
    let Some(status) = status_by_uri(ctx.state, id).await? else {
        return Err(Refused::Ignored(format!("{id} is not a stored status")));
    };
    sqlx::query(
        "INSERT INTO favourites (account_id, status_id) VALUES ($1, $2) \
         ON CONFLICT (account_id, status_id) DO NOTHING",
    )
    .bind(ctx.actor_id)
    .bind(status)
    .execute(ctx.state.db.primary())
    .await?;
    notify(
        ctx.state,
        Cause::Favourite {
            account: ctx.actor_id,
            status,
        },
    )
    .await;
    Ok(())
}
