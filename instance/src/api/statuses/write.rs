//! Posting, editing and deleting statuses.
//!
//! Each runs in one transaction: the status row, its mentions, hashtags, media and edit
//! history are all written or none is, whichever step fails.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgConnection;
use tracing::warn;

use super::{me, parse_id, status_json, visible_status};
use crate::api::ApiError;
use crate::api::entities::status::Status;
use crate::api::instance::limits;
use crate::api::notifications::{Cause, notify};
use crate::api::params::{Params, flex};
use crate::api::polls;
use crate::auth::Auth;
use crate::federation::delivery::Outgoing;
use crate::redis_keys::Namespace;
use crate::state::AppState;
use crate::text::{self, MentionTarget};

/// The raw text (and content warning) accepted at all, before Mastodon's weighted count:
/// a URL counts 23 characters whatever its length, so the count alone bounds nothing.
const RAW_TEXT_MAX: usize = 10_000;
/// Mastodon keeps an idempotency key for an hour.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(3600);
/// A request that claimed a key and died frees it after this long.
const IDEMPOTENCY_PENDING_TTL: Duration = Duration::from_secs(60);
const IDEMPOTENCY_PENDING: &str = "pending";
/// How long a request waits for another one with the same key to finish.
const IDEMPOTENCY_WAIT: Duration = Duration::from_secs(10);
/// Hashtag names longer than this are shown but not stored (the `tags` table's bound).
const TAG_NAME_MAX: usize = 256;

#[derive(Debug, Default, Deserialize)]
pub struct CreateParams {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "flex::list")]
    media_ids: Vec<String>,
    #[serde(default)]
    in_reply_to_id: Option<Value>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    sensitive: Option<bool>,
    #[serde(default)]
    spoiler_text: Option<String>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    poll: Option<Value>,
    #[serde(default)]
    scheduled_at: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EditParams {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    spoiler_text: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    sensitive: Option<bool>,
    /// Absent: keep the attachments; present (even empty): the new list.
    #[serde(default)]
    media_ids: Option<Value>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    poll: Option<Value>,
}

/// A value that means "not given": absent, null, or an empty string.
fn given(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// An id given as a string or a number; empty means none.
fn opt_id(field: &str, v: Option<Value>) -> Result<Option<i64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::validation(field, "is not an ID")),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::validation(field, "is not an ID")),
        Some(_) => Err(ApiError::validation(field, "is not an ID")),
    }
}

/// Media ids in the order given, each once; at most `MAX_MEDIA_ATTACHMENTS`.
fn media_ids(ids: &[String]) -> Result<Vec<i64>, ApiError> {
    if ids.len() > limits::MAX_MEDIA_ATTACHMENTS as usize {
        return Err(ApiError::Unprocessable(format!(
            "Cannot attach more than {} files",
            limits::MAX_MEDIA_ATTACHMENTS
        )));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let id: i64 = id
            .parse()
            .map_err(|_| ApiError::validation("media_ids", "are not IDs"))?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

fn check_visibility(v: &str) -> Result<(), ApiError> {
    match v {
        "public" | "unlisted" | "private" | "direct" => Ok(()),
        _ => Err(ApiError::validation(
            "Visibility",
            "is not included in the list",
        )),
    }
}

/// An ISO 639 code from what the client sent (`en`, `pt-BR`, `zh_TW` give `en`, `pt`, `zh`),
/// or None for anything else: Mastodon falls back to a default rather than refusing.
fn language_code(given: &str) -> Option<String> {
    let code = given.split(['-', '_']).next()?.to_ascii_lowercase();
    ((2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase())).then_some(code)
}

/// Mastodon's length rule, with its messages.
fn check_text(text: &str, spoiler_text: &str, has_media: bool) -> Result<(), ApiError> {
    if text.trim().is_empty() && !has_media {
        return Err(ApiError::validation("Text", "can't be blank"));
    }
    let too_long = || {
        ApiError::validation(
            "Text",
            &format!(
                "character limit of {} exceeded",
                limits::MAX_STATUS_CHARACTERS
            ),
        )
    };
    if text.chars().count() > RAW_TEXT_MAX || spoiler_text.chars().count() > RAW_TEXT_MAX {
        return Err(too_long());
    }
    let length = text::countable_length(
        text,
        spoiler_text,
        limits::CHARACTERS_RESERVED_PER_URL as usize,
    );
    if length > limits::MAX_STATUS_CHARACTERS as usize {
        return Err(too_long());
    }
    Ok(())
}

/// A text rendered to HTML, with the accounts it mentions (known ones only) and its tags.
struct Rendered {
    html: String,
    mentions: Vec<i64>,
    tags: Vec<String>,
}

/// Renders `text`, resolving its mentions to accounts this server knows.
async fn render(
    conn: &mut PgConnection,
    state: &AppState,
    text: &str,
) -> Result<Rendered, ApiError> {
    let domain = &state.config.domain;
    let extracted = text::extract(text, domain);
    let (usernames, domains): (Vec<String>, Vec<String>) = extracted
        .mentions
        .iter()
        .map(|a| {
            (
                a.username.to_lowercase(),
                a.domain.clone().unwrap_or_default(),
            )
        })
        .unzip();
    // Most posts mention nobody: no round trip for them inside the transaction.
    let known: Vec<(i64, String, Option<String>, Option<String>)> = if usernames.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(
            "SELECT a.id, a.username, a.domain, coalesce(a.url, a.uri) FROM accounts a \
             JOIN unnest($1::text[], $2::text[]) AS w(username, domain) \
               ON lower(a.username) = w.username AND coalesce(a.domain, '') = w.domain \
             WHERE a.suspended_at IS NULL",
        )
        .bind(&usernames)
        .bind(&domains)
        .fetch_all(&mut *conn)
        .await?
    };
    let find = |acct: &text::Acct| {
        known.iter().find(|(_, username, d, _)| {
            username.eq_ignore_ascii_case(&acct.username) && d.as_deref() == acct.domain.as_deref()
        })
    };
    let base = state.base_url();
    let html = text::render(text, &base, domain, |acct| {
        // The profile page, as peers link it: a remote account's own (from its actor),
        // a local one's under our base URL.
        find(acct).map(|(_, username, d, profile)| MentionTarget {
            url: match (d, profile) {
                (None, _) => format!("{base}/@{username}"),
                (Some(_), Some(profile)) => profile.clone(),
                (Some(d), None) => format!("https://{d}/@{username}"),
            },
            username: username.clone(),
        })
    });
    let mentions = extracted
        .mentions
        .iter()
        .filter_map(|a| find(a).map(|(id, _, _, _)| *id))
        .collect();
    let mut tags: Vec<String> = extracted
        .tags
        .into_iter()
        .filter(|t| t.chars().count() <= TAG_NAME_MAX)
        .collect();
    // One order for every transaction, so that two posts creating the same new tags
    // cannot deadlock on the unique index.
    tags.sort_by_key(|t| t.to_lowercase());
    Ok(Rendered {
        html,
        mentions,
        tags,
    })
}

/// Replaces the mentions and hashtags of `status_id` with those of `rendered` (`fresh`: a
/// status just inserted has none to replace). Each statement is a round trip inside the
/// post's transaction: those with nothing to do are left out.
async fn store_relations(
    conn: &mut PgConnection,
    status_id: i64,
    rendered: &Rendered,
    fresh: bool,
) -> Result<(), ApiError> {
    if !fresh {
        sqlx::query("DELETE FROM mentions WHERE status_id = $1")
            .bind(status_id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM statuses_tags WHERE status_id = $1")
            .bind(status_id)
            .execute(&mut *conn)
            .await?;
    }
    if !rendered.mentions.is_empty() {
        sqlx::query(
            "INSERT INTO mentions (status_id, account_id) SELECT $1, unnest($2::bigint[]) \
             ON CONFLICT (status_id, account_id) DO NOTHING",
        )
        .bind(status_id)
        .bind(&rendered.mentions)
        .execute(&mut *conn)
        .await?;
    }
    if !rendered.tags.is_empty() {
        sqlx::query(
            "INSERT INTO tags (name) SELECT unnest($1::text[]) \
             ON CONFLICT ((lower(name))) DO NOTHING",
        )
        .bind(&rendered.tags)
        .execute(&mut *conn)
        .await?;
        let lowered: Vec<String> = rendered.tags.iter().map(|t| t.to_lowercase()).collect();
        sqlx::query(
            "INSERT INTO statuses_tags (status_id, tag_id) \
             SELECT $1, t.id FROM tags t WHERE lower(t.name) = ANY($2::text[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(status_id)
        .bind(&lowered)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct MediaCheck {
    id: i64,
    account_id: i64,
    status_id: Option<i64>,
    r#type: String,
    state: String,
}

/// Attaches the media `ids` to `status_id`: each must be the caller's, ready, and not
/// attached to another status; a video, gifv or audio file goes alone, as in Mastodon.
/// The rows are locked, so two posts cannot take the same attachment.
async fn attach_media(
    conn: &mut PgConnection,
    me: i64,
    status_id: i64,
    ids: &[i64],
) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<MediaCheck> = sqlx::query_as(
        "SELECT id, account_id, status_id, type, state FROM media_attachments \
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    for id in ids {
        let usable = rows.iter().find(|m| m.id == *id).filter(|m| {
            m.account_id == me && m.status_id.is_none_or(|s| s == status_id) && m.state != "failed"
        });
        let Some(media) = usable else {
            return Err(ApiError::validation(
                "media_ids",
                "must name your own media attachments, not attached to another status",
            ));
        };
        if media.state == "processing" {
            return Err(ApiError::Unprocessable(
                "Cannot attach files that have not finished processing. Try again in a moment!"
                    .into(),
            ));
        }
    }
    if rows.len() > 1 && rows.iter().any(|m| m.r#type != "image") {
        return Err(ApiError::Unprocessable(
            "Cannot attach a video to a post that already contains images".into(),
        ));
    }
    sqlx::query("UPDATE media_attachments SET status_id = $1 WHERE id = ANY($2)")
        .bind(status_id)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// What an `Idempotency-Key` leads to.
enum Claim {
    /// This request creates the status and then records it under the key.
    Mine(String),
    /// An earlier request with the same key created this status.
    Done(Box<Status>),
}

/// The Redis key of an `Idempotency-Key` header, per account (keys are the client's and
/// may collide between users, and accounts between instances sharing a Redis: the key is
/// within the namespace); hashed, so that its length is bounded.
fn idempotency_key(keys: &Namespace, headers: &HeaderMap, me: i64) -> Option<String> {
    let key = headers.get("idempotency-key")?.as_bytes();
    if key.is_empty() {
        return None;
    }
    let hash = crate::auth::credentials::digest(&String::from_utf8_lossy(key));
    Some(keys.key(&format!("idempotency:status:{me}:{hash}")))
}

/// Claims the key, or finds the status an earlier request made with it; waits while
/// another request holding the key is still at work.
async fn claim(state: &AppState, key: String, me: i64) -> Result<Claim, ApiError> {
    let redis = |e: redis::RedisError| ApiError::Internal(anyhow::anyhow!("redis: {e}"));
    let deadline = tokio::time::Instant::now() + IDEMPOTENCY_WAIT;
    loop {
        if state
            .redis
            .set_ex(&key, IDEMPOTENCY_PENDING, IDEMPOTENCY_PENDING_TTL, true)
            .await
            .map_err(redis)?
        {
            return Ok(Claim::Mine(key));
        }
        match state.redis.get(&key).await.map_err(redis)? {
            Some(v) if v != IDEMPOTENCY_PENDING => {
                let found = match v.parse::<i64>() {
                    Ok(id) => status_json(state, id, Some(me)).await.ok(),
                    Err(_) => None,
                };
                if let Some(status) = found {
                    return Ok(Claim::Done(Box::new(status)));
                }
                // The status was deleted since: post anew under the same key.
                state
                    .redis
                    .set_ex(&key, IDEMPOTENCY_PENDING, IDEMPOTENCY_PENDING_TTL, false)
                    .await
                    .map_err(redis)?;
                return Ok(Claim::Mine(key));
            }
            // Expired between the two commands: try again at once.
            None => continue,
            Some(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::Unprocessable(
                "A request with the same Idempotency-Key is still being processed".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(sqlx::FromRow)]
struct UserDefaults {
    default_privacy: String,
    default_sensitive: bool,
    default_language: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Params { value: p, .. }: Params<CreateParams>,
) -> Result<Json<Status>, ApiError> {
    let me = me(&auth, "write:statuses")?;
    let poll = polls::params::parse(&p.poll)?;
    let has_poll = poll.is_some();
    if given(&p.scheduled_at) {
        return Err(ApiError::Unprocessable(
            "scheduled statuses are not supported yet".into(),
        ));
    }
    let text = p.status.unwrap_or_default();
    let spoiler_text = p.spoiler_text.unwrap_or_default();
    let media = media_ids(&p.media_ids)?;
    let has_media = !media.is_empty();
    check_text(&text, &spoiler_text, !media.is_empty())?;
    polls::params::check_media(poll.as_ref(), !media.is_empty())?;
    if let Some(v) = &p.visibility {
        check_visibility(v)?;
    }
    let in_reply_to = opt_id("in_reply_to_id", p.in_reply_to_id)?;

    // Everything the request can be refused for without the database is checked above, so
    // that a refused request never holds the key.
    let key = match idempotency_key(state.redis.keys(), &headers, me) {
        None => None,
        Some(key) => match claim(&state, key, me).await? {
            Claim::Done(status) => return Ok(Json(*status)),
            Claim::Mine(key) => Some(key),
        },
    };
    let result = insert_status(
        &state,
        &auth,
        me,
        NewStatus {
            text,
            spoiler_text,
            media,
            in_reply_to,
            sensitive: p.sensitive,
            visibility: p.visibility,
            language: p.language,
            poll,
        },
    )
    .await;
    if let Some(key) = key {
        let recorded = match &result {
            Ok((id, _)) => state
                .redis
                .set_ex(&key, &id.to_string(), IDEMPOTENCY_TTL, false)
                .await
                .map(drop),
            // Free the key at once: the client will retry with it.
            Err(_) => state.redis.del(&key).await,
        };
        if let Err(e) = recorded {
            warn!(error = %e, "cannot record an idempotency key");
        }
    }
    let (id, html) = result?;
    crate::tasks::timeline::enqueue_fan_out(&state, id).await;
    crate::federation::delivery::send(&state, Outgoing::Status { status_id: id }).await;
    crate::tasks::preview_cards::enqueue_if_linked(&state, id, &html, has_media).await;
    crate::search::jobs::enqueue_status(&state, id).await;
    if has_poll {
        crate::tasks::polls::schedule(&state, id).await;
    }
    notify(&state, Cause::Posted { status: id }).await;
    Ok(Json(status_json(&state, id, Some(me)).await?))
}

struct NewStatus {
    text: String,
    spoiler_text: String,
    media: Vec<i64>,
    in_reply_to: Option<i64>,
    sensitive: Option<bool>,
    visibility: Option<String>,
    language: Option<String>,
    poll: Option<polls::params::NewPoll>,
}

/// Writes the status and all that belongs to it in one transaction; its id and HTML.
async fn insert_status(
    state: &AppState,
    auth: &Auth,
    me: i64,
    new: NewStatus,
) -> Result<(i64, String), ApiError> {
    let mut tx = state.db.begin().await?;
    let defaults: UserDefaults = sqlx::query_as(
        "SELECT default_privacy, default_sensitive, default_language FROM users \
         WHERE account_id = $1",
    )
    .bind(me)
    .fetch_one(&mut *tx)
    .await?;
    // Replying to a reblog is replying to what it shares; to something unseen, impossible.
    let parent = match new.in_reply_to {
        None => None,
        Some(id) => {
            let parent = visible_status(&mut *tx, id, Some(me)).await?;
            Some(match parent.reblog_of_id {
                Some(original) => visible_status(&mut *tx, original, Some(me)).await?,
                None => parent,
            })
        }
    };
    let visibility = new.visibility.unwrap_or(defaults.default_privacy);
    let language = new
        .language
        .as_deref()
        .and_then(language_code)
        .or(defaults.default_language);
    let sensitive =
        new.sensitive.unwrap_or(defaults.default_sensitive) || !new.spoiler_text.is_empty();
    let rendered = render(&mut tx, state, &new.text).await?;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO statuses (account_id, text, content_html, spoiler_text, visibility, \
             sensitive, language, in_reply_to_id, in_reply_to_account_id, \
             ordered_media_attachment_ids, application_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(me)
    .bind(&new.text)
    .bind(&rendered.html)
    .bind(&new.spoiler_text)
    .bind(&visibility)
    .bind(sensitive)
    .bind(&language)
    .bind(parent.as_ref().map(|p| p.id))
    .bind(parent.as_ref().map(|p| p.account_id))
    .bind(&new.media)
    .bind(auth.application_id)
    .fetch_one(&mut *tx)
    .await?;
    store_relations(&mut tx, id, &rendered, true).await?;
    attach_media(&mut tx, me, id, &new.media).await?;
    if let Some(poll) = &new.poll {
        polls::store::insert(&mut tx, id, me, poll).await?;
    }
    tx.commit().await?;
    Ok((id, rendered.html))
}

#[derive(sqlx::FromRow)]
struct Current {
    text: String,
    spoiler_text: String,
    sensitive: bool,
    language: Option<String>,
    ordered_media_attachment_ids: Vec<i64>,
    reblog_of_id: Option<i64>,
}

/// Records the status as it is now in its history: `original` for the version before the
/// first edit (dated when the status was posted), else the result of an edit.
async fn snapshot(
    conn: &mut PgConnection,
    status_id: i64,
    editor: i64,
    original: bool,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO status_edits (status_id, account_id, text, content_html, spoiler_text, \
             sensitive, ordered_media_attachment_ids, media_descriptions, created_at) \
         SELECT s.id, $2, s.text, s.content_html, s.spoiler_text, s.sensitive, \
                s.ordered_media_attachment_ids, \
                ARRAY(SELECT m.description FROM unnest(s.ordered_media_attachment_ids) \
                          WITH ORDINALITY AS o(id, n) \
                      JOIN media_attachments m ON m.id = o.id ORDER BY o.n), \
                CASE WHEN $3 THEN s.created_at ELSE now() END \
         FROM statuses s WHERE s.id = $1",
    )
    .bind(status_id)
    .bind(editor)
    .bind(original)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn edit(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params { value: p, .. }: Params<EditParams>,
) -> Result<Json<Status>, ApiError> {
    let me = me(&auth, "write:statuses")?;
    let id = parse_id(&id)?;
    let new_poll = polls::params::parse(&p.poll)?;
    let new_media = match p.media_ids {
        None => None,
        Some(v) => {
            let list =
                flex::list(v).map_err(|e| ApiError::validation("media_ids", &e.to_string()))?;
            Some(media_ids(&list)?)
        }
    };
    let mut tx = state.db.begin().await?;
    let current: Current = sqlx::query_as(
        "SELECT text, spoiler_text, sensitive, language, ordered_media_attachment_ids, \
                reblog_of_id \
         FROM statuses WHERE id = $1 AND account_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(me)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    if current.reblog_of_id.is_some() {
        return Err(ApiError::Unprocessable("A boost cannot be edited".into()));
    }
    let text = p.status.unwrap_or_else(|| current.text.clone());
    let spoiler_text = p
        .spoiler_text
        .clone()
        .unwrap_or_else(|| current.spoiler_text.clone());
    // Mastodon recomputes the flag only when either field is given.
    let sensitive = if p.sensitive.is_some() || p.spoiler_text.is_some() {
        p.sensitive.unwrap_or(false) || !spoiler_text.is_empty()
    } else {
        current.sensitive
    };
    let media = new_media.unwrap_or_else(|| current.ordered_media_attachment_ids.clone());
    let language = match p.language.as_deref() {
        Some(l) => language_code(l).or(current.language.clone()),
        None => current.language.clone(),
    };
    check_text(&text, &spoiler_text, !media.is_empty())?;
    polls::params::check_media(new_poll.as_ref(), !media.is_empty())?;
    let poll_changed = polls::store::apply_edit(&mut tx, id, me, new_poll.as_ref()).await?;
    let changed = poll_changed
        || text != current.text
        || spoiler_text != current.spoiler_text
        || sensitive != current.sensitive
        || media != current.ordered_media_attachment_ids
        || language != current.language;
    if !changed {
        drop(tx);
        return Ok(Json(status_json(&state, id, Some(me)).await?));
    }
    let (edited_before,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM status_edits WHERE status_id = $1)")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if !edited_before {
        snapshot(&mut tx, id, me, true).await?;
    }
    let rendered = render(&mut tx, &state, &text).await?;
    sqlx::query(
        "UPDATE statuses SET text = $2, content_html = $3, spoiler_text = $4, sensitive = $5, \
             language = $6, ordered_media_attachment_ids = $7, edited_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(&text)
    .bind(&rendered.html)
    .bind(&spoiler_text)
    .bind(sensitive)
    .bind(&language)
    .bind(&media)
    .execute(&mut *tx)
    .await?;
    store_relations(&mut tx, id, &rendered, false).await?;
    attach_media(&mut tx, me, id, &media).await?;
    snapshot(&mut tx, id, me, false).await?;
    tx.commit().await?;
    crate::tasks::timeline::enqueue_update(&state, id).await;
    crate::federation::delivery::send(&state, Outgoing::StatusUpdate { status_id: id }).await;
    crate::tasks::preview_cards::enqueue_edited(&state, id).await;
    crate::search::jobs::enqueue_status(&state, id).await;
    crate::tasks::polls::schedule(&state, id).await;
    notify(&state, Cause::Edited { status: id }).await;
    Ok(Json(status_json(&state, id, Some(me)).await?))
}

/// Deletes the caller's status and answers with it as it was, `text` included, so that a
/// client can offer to redraft it. Its media are kept, unattached, for the redraft.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let me = me(&auth, "write:statuses")?;
    let id = parse_id(&id)?;
    let mut tx = state.db.begin().await?;
    let (text,): (String,) =
        sqlx::query_as("SELECT text FROM statuses WHERE id = $1 AND account_id = $2 FOR UPDATE")
            .bind(id)
            .bind(me)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ApiError::NotFound)?;
    let mut status = status_json(&state, id, Some(me)).await?;
    // While the rows still say whose feeds hold the status and its reblogs.
    let removal = crate::tasks::timeline::prepare_removal(&state, id).await;
    let federated = crate::federation::delivery::prepare_delete(&state, id).await;
    sqlx::query("DELETE FROM statuses WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    crate::tasks::timeline::enqueue_removal(&state, removal).await;
    if let Some(federated) = federated {
        crate::federation::delivery::send(&state, federated).await;
    }
    crate::search::jobs::enqueue_status(&state, id).await;
    status.text = Some(text);
    Ok(Json(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_are_reduced_to_their_iso_639_code() {
        let cases = [
            ("en", Some("en")),
            ("pt-BR", Some("pt")),
            ("zh_TW", Some("zh")),
            ("FIL", Some("fil")),
            ("english", None),
            ("", None),
            ("e1", None),
        ];
        for (input, want) in cases {
            assert_eq!(language_code(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn text_limits_follow_mastodon() {
        assert!(check_text("", "", false).is_err());
        assert!(check_text("  ", "", true).is_ok());
        assert!(check_text(&"a".repeat(500), "", false).is_ok());
        assert!(check_text(&"a".repeat(501), "", false).is_err());
        assert!(check_text(&"a".repeat(499), "cw", false).is_err());
        let long_url = format!("https://example.com/{}", "x".repeat(2000));
        assert!(check_text(&format!("{} {long_url}", "a".repeat(476)), "", false).is_ok());
        assert!(check_text(&format!("{} {long_url}", "a".repeat(477)), "", false).is_err());
    }

    #[test]
    fn media_ids_are_bounded_and_deduplicated() {
        let ids = |v: &[&str]| media_ids(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(ids(&["3", "1", "3"]).unwrap(), [3, 1]);
        assert!(ids(&["1", "2", "3", "4", "5"]).is_err());
        assert!(ids(&["x"]).is_err());
    }
}
