//! Local statuses as ActivityPub `Note`s, their `Create` activities, and reblogs as
//! `Announce`. Addressing follows Mastodon, since peers decide visibility from `to`/`cc`.

use serde_json::{Value, json};
use sqlx::types::Json;
use sqlx::types::chrono::{DateTime, Utc};

use crate::api::entities::account::iso8601;
use crate::federation::urls::{self, PUBLIC};
use crate::state::AppState;

/// The context of status documents: the `toot:` terms for `blurhash`, `focalPoint`, and
/// `sensitive` / `Hashtag` which ActivityStreams itself lacks.
pub fn context() -> Value {
    json!([
        "https://www.w3.org/ns/activitystreams",
        {
            "ostatus": "http://ostatus.org#",
            "atomUri": "ostatus:atomUri",
            "inReplyToAtomUri": "ostatus:inReplyToAtomUri",
            "sensitive": "as:sensitive",
            "toot": "http://joinmastodon.org/ns#",
            "blurhash": "toot:blurhash",
            "focalPoint": {"@container": "@list", "@id": "toot:focalPoint"},
            "Hashtag": "as:Hashtag"
        }
    ])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Public,
    Unlisted,
    Private,
    Direct,
}

impl Visibility {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "public" => Self::Public,
            "unlisted" => Self::Unlisted,
            "private" => Self::Private,
            "direct" => Self::Direct,
            _ => return None,
        })
    }
}

/// `(to, cc)` as Mastodon addresses a status: public to everyone with the followers in
/// copy; unlisted the reverse (no public timelines); private to the followers; direct to
/// the mentioned only. Mentioned accounts are always addressed.
pub fn addressing(
    visibility: Visibility,
    followers: &str,
    mentions: &[String],
) -> (Vec<String>, Vec<String>) {
    let mentions = mentions.to_vec();
    match visibility {
        Visibility::Public => (
            vec![PUBLIC.into()],
            [vec![followers.to_string()], mentions].concat(),
        ),
        Visibility::Unlisted => (
            vec![followers.to_string()],
            [vec![PUBLIC.to_string()], mentions].concat(),
        ),
        Visibility::Private => (vec![followers.to_string()], mentions),
        Visibility::Direct => (mentions, Vec::new()),
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct StatusRow {
    pub id: i64,
    pub username: String,
    pub content_html: String,
    pub spoiler_text: String,
    pub visibility: String,
    pub sensitive: bool,
    pub language: Option<String>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub reblog_of_id: Option<i64>,
    pub parent_id: Option<i64>,
    pub parent_uri: Option<String>,
    pub parent_username: Option<String>,
    pub parent_domain: Option<String>,
    pub reblogged_uri: Option<String>,
    pub reblogged_username: Option<String>,
    pub reblogged_domain: Option<String>,
    pub reblogged_actor_uri: Option<String>,
}

macro_rules! status_select {
    () => {
        "SELECT s.id, a.username, s.content_html, s.spoiler_text, s.visibility, s.sensitive, \
                s.language, s.created_at, s.edited_at, s.reblog_of_id, \
                p.id AS parent_id, p.uri AS parent_uri, pa.username AS parent_username, \
                pa.domain AS parent_domain, \
                r.uri AS reblogged_uri, ra.username AS reblogged_username, \
                ra.domain AS reblogged_domain, ra.uri AS reblogged_actor_uri \
         FROM statuses s JOIN accounts a ON a.id = s.account_id \
         LEFT JOIN statuses p ON p.id = s.in_reply_to_id \
         LEFT JOIN accounts pa ON pa.id = p.account_id \
         LEFT JOIN statuses r ON r.id = s.reblog_of_id \
         LEFT JOIN accounts ra ON ra.id = r.account_id "
    };
}

/// A local status by its author's username and id, whatever its visibility (the caller
/// decides who may see it).
pub async fn find(
    state: &AppState,
    username: &str,
    id: i64,
) -> Result<Option<StatusRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        status_select!(),
        "WHERE s.id = $1 AND lower(a.username) = lower($2) AND a.domain IS NULL \
           AND a.suspended_at IS NULL"
    ))
    .bind(id)
    .bind(username)
    .fetch_optional(state.db.reader())
    .await
}

/// The public and unlisted statuses (and reblogs of such) of a local account, newest first,
/// with ids in `(min_id, max_id)`.
pub async fn public_page(
    state: &AppState,
    account_id: i64,
    max_id: Option<i64>,
    min_id: Option<i64>,
    limit: i64,
) -> Result<Vec<StatusRow>, sqlx::Error> {
    let mut rows: Vec<StatusRow> = sqlx::query_as(concat!(
        status_select!(),
        "WHERE s.account_id = $1 AND s.visibility IN ('public', 'unlisted') \
           AND (s.reblog_of_id IS NULL OR r.visibility IN ('public', 'unlisted')) \
           AND ($2::bigint IS NULL OR s.id < $2) AND ($3::bigint IS NULL OR s.id > $3) \
         ORDER BY CASE WHEN $3::bigint IS NULL THEN -s.id ELSE s.id END LIMIT $4"
    ))
    .bind(account_id)
    .bind(max_id)
    .bind(min_id)
    .bind(limit)
    .fetch_all(state.db.reader())
    .await?;
    if min_id.is_some() {
        rows.reverse();
    }
    Ok(rows)
}

#[derive(sqlx::FromRow)]
struct MediaRow {
    file_key: Option<String>,
    content_type: Option<String>,
    description: String,
    blurhash: Option<String>,
    meta: Json<Value>,
}

/// The `Note` of a status that is not a reblog.
pub async fn note(state: &AppState, row: &StatusRow) -> Result<Value, sqlx::Error> {
    let db = state.db.reader();
    let mentioned: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT a.username, a.domain, a.uri FROM mentions m JOIN accounts a ON a.id = m.account_id \
         WHERE m.status_id = $1 ORDER BY m.id",
    )
    .bind(row.id)
    .fetch_all(db)
    .await?;
    let tags: Vec<(String,)> = sqlx::query_as(
        "SELECT t.name FROM statuses_tags st JOIN tags t ON t.id = st.tag_id \
         WHERE st.status_id = $1 ORDER BY t.name",
    )
    .bind(row.id)
    .fetch_all(db)
    .await?;
    let media: Vec<MediaRow> = sqlx::query_as(
        "SELECT m.file_key, m.content_type, m.description, m.blurhash, m.meta \
         FROM media_attachments m JOIN statuses s ON s.id = m.status_id \
         WHERE m.status_id = $1 AND m.state = 'ready' \
         ORDER BY array_position(s.ordered_media_attachment_ids, m.id), m.id",
    )
    .bind(row.id)
    .fetch_all(db)
    .await?;

    let id = urls::status(state, &row.username, row.id);
    let mention_uris: Vec<String> = mentioned
        .iter()
        // A remote actor's id is the one it was fetched with (not every server uses
        // Mastodon's `/users/name`).
        .map(|(u, d, uri)| {
            uri.clone()
                .unwrap_or_else(|| urls::account_actor(state, u, d.as_deref()))
        })
        .collect();
    let visibility = Visibility::parse(&row.visibility).unwrap_or(Visibility::Direct);
    let (to, cc) = addressing(
        visibility,
        &urls::followers(state, &row.username),
        &mention_uris,
    );
    // Remote parents always have their uri; local ones derive it from their id.
    let in_reply_to = match (row.parent_id, &row.parent_uri, &row.parent_username) {
        (Some(_), Some(uri), _) => Some(uri.clone()),
        (Some(pid), None, Some(u)) if row.parent_domain.is_none() => {
            Some(urls::status(state, u, pid))
        }
        _ => None,
    };
    let mut tag: Vec<Value> = mentioned
        .iter()
        .zip(&mention_uris)
        .map(|((u, d, _), href)| {
            let name = format!("@{u}@{}", d.as_deref().unwrap_or(&state.config.domain));
            json!({"type": "Mention", "href": href, "name": name})
        })
        .collect();
    tag.extend(tags.iter().map(|(name,)| {
        json!({
            "type": "Hashtag",
            "href": format!("{}/tags/{}", state.base_url(), crate::text::percent_encode(name)),
            "name": format!("#{}", name.to_lowercase()),
        })
    }));
    let attachment: Vec<Value> = media
        .iter()
        .filter_map(|m| {
            let key = m.file_key.as_ref()?;
            let url = state.storage.as_ref()?.public_url(key);
            let mut doc = json!({
                "type": "Document",
                "mediaType": m.content_type,
                "url": url,
                "name": if m.description.is_empty() { Value::Null } else { json!(m.description) },
                "blurhash": m.blurhash,
            });
            if let Some(original) = m.meta.get("original") {
                doc["width"] = original["width"].clone();
                doc["height"] = original["height"].clone();
            }
            if let Some(focus) = m.meta.get("focus") {
                doc["focalPoint"] = json!([focus["x"], focus["y"]]);
            }
            Some(doc)
        })
        .collect();
    let mut note = json!({
        "id": id,
        "type": "Note",
        "summary": if row.spoiler_text.is_empty() { Value::Null } else { json!(row.spoiler_text) },
        "inReplyTo": in_reply_to,
        "published": iso8601(row.created_at),
        "url": urls::status_page(state, &row.username, row.id),
        "attributedTo": urls::actor(state, &row.username),
        "to": to,
        "cc": cc,
        "sensitive": row.sensitive || !row.spoiler_text.is_empty(),
        "atomUri": id,
        "content": row.content_html,
        "attachment": attachment,
        "tag": tag,
    });
    if let Some(edited) = row.edited_at {
        note["updated"] = json!(iso8601(edited));
    }
    if let Some(lang) = &row.language {
        note["contentMap"] = json!({ lang: row.content_html });
    }
    Ok(note)
}

/// The activity of a status: `Create` of its Note, or `Announce` of what it reblogs.
pub async fn activity(state: &AppState, row: &StatusRow) -> Result<Value, sqlx::Error> {
    let id = format!("{}/activity", urls::status(state, &row.username, row.id));
    let actor = urls::actor(state, &row.username);
    let published = iso8601(row.created_at);
    if let Some(reblogged) = row.reblog_of_id {
        let object = match (&row.reblogged_uri, &row.reblogged_username) {
            (Some(uri), _) => uri.clone(),
            (None, Some(u)) => urls::status(state, u, reblogged),
            (None, None) => String::new(),
        };
        let author = row.reblogged_actor_uri.clone().or_else(|| {
            row.reblogged_username
                .as_deref()
                .map(|u| urls::account_actor(state, u, row.reblogged_domain.as_deref()))
        });
        let visibility = Visibility::parse(&row.visibility).unwrap_or(Visibility::Direct);
        let (to, mut cc) = addressing(visibility, &urls::followers(state, &row.username), &[]);
        cc.extend(author);
        return Ok(json!({
            "id": id, "type": "Announce", "actor": actor, "published": published,
            "to": to, "cc": cc, "object": object,
        }));
    }
    let note = note(state, row).await?;
    Ok(json!({
        "id": id,
        "type": "Create",
        "actor": actor,
        "published": published,
        "to": note["to"],
        "cc": note["cc"],
        "object": note,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addressing_follows_visibility() {
        let f = "https://d.example/users/a/followers";
        let m = vec!["https://r.example/users/b".to_string()];
        assert_eq!(
            addressing(Visibility::Public, f, &m),
            (vec![PUBLIC.to_string()], vec![f.to_string(), m[0].clone()])
        );
        assert_eq!(
            addressing(Visibility::Unlisted, f, &m),
            (vec![f.to_string()], vec![PUBLIC.to_string(), m[0].clone()])
        );
        assert_eq!(
            addressing(Visibility::Private, f, &m),
            (vec![f.to_string()], m.clone())
        );
        assert_eq!(addressing(Visibility::Direct, f, &m), (m.clone(), vec![]));
        // Neither followers-only nor direct posts ever name the public collection.
        for v in [Visibility::Private, Visibility::Direct] {
            let (to, cc) = addressing(v, f, &m);
            assert!(!to.iter().chain(&cc).any(|a| a == PUBLIC), "{v:?}");
        }
    }
}
