//! Mastodon's `Status` entity (with its `StatusEdit` and `StatusSource` companions), and the
//! rule of who may see a status, shared by every endpoint and timeline that shows one.
//!
//! [`load_statuses`] builds any number of statuses in a fixed number of queries, keeping the
//! order asked for and leaving out what the viewer may not see.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::types::Json;
use sqlx::types::chrono::{DateTime, Utc};

use super::account::{Account, AccountRow, account_columns, account_json, iso8601};
use super::media_attachment::{MediaAttachment, load_media};
use super::poll::{Poll, load_polls};
use super::preview_card::{PreviewCard, load_cards};
use crate::state::AppState;

/// SQL: whether the status aliased `$s` may be seen by the account `$viewer` (a SQL
/// expression of type bigint, NULL for anonymous callers). Mastodon's `StatusPolicy#show?`:
/// the author sees everything; public and unlisted statuses are seen by all but those the
/// author blocks; private ones by followers and mentioned accounts; direct ones by mentioned
/// accounts only. Nothing of a suspended author is seen.
///
/// Whether anyone blocks the viewer is asked once per statement (an InitPlan), the block
/// of each author only when someone does: most viewers are blocked by no one.
///
/// The author's suspension is a scalar subquery, not `EXISTS`: PostgreSQL turns an `EXISTS`
/// here into a hash of every unsuspended account, built at each call (2 to 6 ms on 10,000
/// accounts for a page of 20 statuses), where the scalar form is one index probe per row.
macro_rules! status_visible {
    ($s:literal, $viewer:literal) => {
        concat!(
            "coalesce(((SELECT va.suspended_at IS NULL FROM accounts va WHERE va.id = ",
            $s,
            ".account_id) \
              AND (",
            $s,
            ".account_id = ",
            $viewer,
            " \
                OR (",
            $s,
            ".visibility IN ('public', 'unlisted') \
                    AND NOT (EXISTS (SELECT 1 FROM blocks vb0 WHERE vb0.target_account_id = ",
            $viewer,
            ") \
                             AND EXISTS (SELECT 1 FROM blocks vb WHERE vb.account_id = ",
            $s,
            ".account_id \
                                         AND vb.target_account_id = ",
            $viewer,
            "))) \
                OR (",
            $s,
            ".visibility = 'private' \
                    AND EXISTS (SELECT 1 FROM follows vf WHERE vf.account_id = ",
            $viewer,
            " \
                                AND vf.target_account_id = ",
            $s,
            ".account_id)) \
                OR (",
            $s,
            ".visibility IN ('private', 'direct') \
                    AND EXISTS (SELECT 1 FROM mentions vm WHERE vm.status_id = ",
            $s,
            ".id \
                                AND vm.account_id = ",
            $viewer,
            ")))), false)"
        )
    };
}
pub(crate) use status_visible;

#[derive(Clone, Debug, Serialize)]
pub struct Mention {
    pub id: String,
    pub username: String,
    pub url: String,
    pub acct: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Tag {
    pub name: String,
    pub url: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Application {
    pub name: String,
    pub website: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub id: String,
    pub uri: String,
    pub url: Option<String>,
    pub created_at: String,
    pub account: Account,
    /// HTML.
    pub content: String,
    pub spoiler_text: String,
    pub visibility: String,
    pub sensitive: bool,
    pub language: Option<String>,
    pub in_reply_to_id: Option<String>,
    pub in_reply_to_account_id: Option<String>,
    pub reblog: Option<Box<Status>>,
    pub media_attachments: Vec<MediaAttachment>,
    pub mentions: Vec<Mention>,
    pub tags: Vec<Tag>,
    pub emojis: Vec<Value>,
    pub reblogs_count: i64,
    pub favourites_count: i64,
    pub replies_count: i64,
    pub edited_at: Option<String>,
    /// The viewer's own marks: absent for anonymous callers, as in Mastodon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub favourited: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reblogged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bookmarked: Option<bool>,
    /// Only on the viewer's own statuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
    pub poll: Option<Poll>,
    pub card: Option<PreviewCard>,
    /// Shown to the author only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<Application>,
    pub filtered: Vec<Value>,
    /// The source text: only in the answer to a deletion (Mastodon's delete-and-redraft).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One version of a status, oldest first in its history.
#[derive(Clone, Debug, Serialize)]
pub struct StatusEdit {
    pub content: String,
    pub spoiler_text: String,
    pub sensitive: bool,
    pub created_at: String,
    pub account: Account,
    pub poll: Option<Value>,
    pub media_attachments: Vec<MediaAttachment>,
    pub emojis: Vec<Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StatusSource {
    pub id: String,
    pub text: String,
    pub spoiler_text: String,
}

#[derive(sqlx::FromRow)]
struct MentionRow {
    status_id: i64,
    id: i64,
    username: String,
    domain: Option<String>,
    /// A remote account's profile page (else its actor id).
    profile: Option<String>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
struct StatusRow {
    id: i64,
    account_id: i64,
    uri: Option<String>,
    /// A remote status's web page, as its Note gave it.
    url: Option<String>,
    content_html: String,
    spoiler_text: String,
    visibility: String,
    sensitive: bool,
    language: Option<String>,
    in_reply_to_id: Option<i64>,
    in_reply_to_account_id: Option<i64>,
    reblog_of_id: Option<i64>,
    ordered_media_attachment_ids: Vec<i64>,
    created_at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
    replies_count: i64,
    reblogs_count: i64,
    favourites_count: i64,
    visible: bool,
    favourited: bool,
    reblogged: bool,
    bookmarked: bool,
    pinned: bool,
    application_name: Option<String>,
    application_website: Option<String>,
    // Whether each companion table has a row for this status: most statuses have none,
    // and asking only about those that do spares a page up to four round trips.
    has_mentions: bool,
    has_tags: bool,
    has_poll: bool,
    has_card: bool,
    /// Whether the viewer has any filter at all (the same on every row).
    viewer_filters: bool,
    /// Home only (false elsewhere): the viewer mutes or blocks the author, or is blocked.
    shunned: bool,
    /// Home only (false elsewhere): the viewer blocks the author's domain.
    domain_blocked: bool,
    /// The author's row, read in the same query: a round trip less per page.
    author: Option<Json<AccountRow>>,
}

/// The statuses `ids` as `viewer` sees them, in the order given, read from the reader pool
/// (timelines and other reads that tolerate replica lag).
pub async fn load_statuses(
    state: &AppState,
    ids: &[i64],
    viewer: Option<i64>,
) -> Result<Vec<Status>, sqlx::Error> {
    load_statuses_from(state.db.reader(), state, ids, viewer).await
}

/// [`load_statuses`] from `db`: the primary when the caller has just written. Unknown ids,
/// statuses the viewer may not see, and reblogs of statuses they may not see are left out.
pub async fn load_statuses_from(
    db: &PgPool,
    state: &AppState,
    ids: &[i64],
    viewer: Option<i64>,
) -> Result<Vec<Status>, sqlx::Error> {
    load(db, state, ids, viewer, false).await
}

/// [`load_statuses`] for `viewer`'s home, which also leaves out what Mastodon's
/// `filter_from_home` does: statuses (and boosts of statuses) of accounts the viewer mutes
/// or blocks or that block them, and boosts of statuses from domains the viewer blocks.
/// Asked in the same query as the statuses, not before them: a round trip less per page.
pub async fn load_home_statuses(
    state: &AppState,
    ids: &[i64],
    viewer: i64,
) -> Result<Vec<Status>, sqlx::Error> {
    load(state.db.reader(), state, ids, Some(viewer), true).await
}

async fn load(
    db: &PgPool,
    state: &AppState,
    ids: &[i64],
    viewer: Option<i64>,
    home: bool,
) -> Result<Vec<Status>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The statuses and the originals of the reblogs among them, with counts, the viewer's
    // marks and whether the viewer may see each; and each author's row, rendered once per
    // author (a profile's page is twenty statuses of one) and read in the same round trip.
    //
    // A mark is looked up only where it can be set: a favourite or a reblog where the
    // status has any, a bookmark, mute, block or domain block when the viewer has any at
    // all (asked once per statement), a pin on the viewer's own statuses. The counts sit in
    // a LATERAL so that the marks can test them (OFFSET 0 keeps it from being merged into
    // the outer query, which would count twice).
    let rows: Vec<StatusRow> = sqlx::query_as(concat!(
        "WITH page AS MATERIALIZED (SELECT s.id, s.account_id, s.uri, s.url, s.content_html, s.spoiler_text, s.visibility, \
                s.sensitive, s.language, s.in_reply_to_id, s.in_reply_to_account_id, \
                s.reblog_of_id, s.ordered_media_attachment_ids, s.created_at, s.edited_at, \
                n.replies_count, n.reblogs_count, n.favourites_count, ",
        status_visible!("s", "$2::bigint"),
        " AS visible, \
                (n.favourites_count > 0 AND EXISTS (SELECT 1 FROM favourites f \
                        WHERE f.status_id = s.id AND f.account_id = $2)) AS favourited, \
                (n.reblogs_count > 0 AND EXISTS (SELECT 1 FROM statuses r \
                        WHERE r.reblog_of_id = s.id AND r.account_id = $2)) AS reblogged, \
                (EXISTS (SELECT 1 FROM bookmarks b0 WHERE b0.account_id = $2) \
                 AND EXISTS (SELECT 1 FROM bookmarks b WHERE b.status_id = s.id \
                             AND b.account_id = $2)) AS bookmarked, \
                (s.account_id = $2 AND EXISTS (SELECT 1 FROM status_pins p \
                        WHERE p.status_id = s.id AND p.account_id = $2)) AS pinned, \
                app.name AS application_name, app.website AS application_website, \
                EXISTS (SELECT 1 FROM mentions m WHERE m.status_id = s.id) AS has_mentions, \
                EXISTS (SELECT 1 FROM statuses_tags st WHERE st.status_id = s.id) AS has_tags, \
                EXISTS (SELECT 1 FROM polls p WHERE p.status_id = s.id) AS has_poll, \
                EXISTS (SELECT 1 FROM preview_cards_statuses pc WHERE pc.status_id = s.id) \
                    AS has_card, \
                EXISTS (SELECT 1 FROM custom_filters cf WHERE cf.account_id = $2) \
                    AS viewer_filters, \
                ($3 AND ((EXISTS (SELECT 1 FROM mutes m0 WHERE m0.account_id = $2) \
                          AND EXISTS (SELECT 1 FROM mutes m WHERE m.account_id = $2 \
                                      AND m.target_account_id = s.account_id \
                                      AND (m.expires_at IS NULL OR m.expires_at > now()))) \
                         OR (EXISTS (SELECT 1 FROM blocks b0 \
                                     WHERE b0.account_id = $2 OR b0.target_account_id = $2) \
                             AND EXISTS (SELECT 1 FROM blocks b \
                                    WHERE (b.account_id = $2 AND b.target_account_id = s.account_id) \
                                       OR (b.target_account_id = $2 AND b.account_id = s.account_id))))) \
                    AS shunned, \
                ($3 AND EXISTS (SELECT 1 FROM account_domain_blocks d0 WHERE d0.account_id = $2) \
                    AND EXISTS (SELECT 1 FROM account_domain_blocks d \
                                JOIN accounts da ON da.domain = d.domain \
                                WHERE d.account_id = $2 AND da.id = s.account_id)) \
                    AS domain_blocked \
         FROM statuses s \
         CROSS JOIN LATERAL (SELECT \
                (SELECT count(*) FROM statuses c WHERE c.in_reply_to_id = s.id \
                    AND c.visibility <> 'direct') AS replies_count, \
                (SELECT count(*) FROM statuses c WHERE c.reblog_of_id = s.id) AS reblogs_count, \
                (SELECT count(*) FROM favourites f WHERE f.status_id = s.id) AS favourites_count \
             OFFSET 0) n \
         LEFT JOIN oauth_applications app ON app.id = s.application_id \
         WHERE s.id IN (SELECT unnest($1::bigint[]) \
                        UNION SELECT r.reblog_of_id FROM statuses r \
                              WHERE r.id = ANY($1) AND r.reblog_of_id IS NOT NULL)), \
         authors AS (SELECT author.id, to_jsonb(author) AS author FROM (SELECT ",
        account_columns!(),
        " FROM accounts a WHERE a.id IN (SELECT account_id FROM page)) author) \
         SELECT page.*, authors.author FROM page LEFT JOIN authors ON authors.id = page.account_id"
    ))
    .bind(ids)
    .bind(viewer)
    .bind(home)
    .fetch_all(db)
    .await?;
    let rows: HashMap<i64, StatusRow> = rows.into_iter().map(|r| (r.id, r)).collect();
    // What the viewer gets: visible statuses, and reblogs only with a visible original; in
    // the home, nothing of an account they shun, and no boost from a domain they block.
    let shown: Vec<(&StatusRow, Option<&StatusRow>)> = ids
        .iter()
        .filter_map(|id| {
            let row = rows.get(id).filter(|r| r.visible && !r.shunned)?;
            match row.reblog_of_id {
                None => Some((row, None)),
                Some(o) => rows
                    .get(&o)
                    .filter(|o| o.visible && !o.shunned && !o.domain_blocked)
                    .map(|o| (row, Some(o))),
            }
        })
        .collect();
    let all: Vec<&StatusRow> = shown
        .iter()
        .flat_map(|(r, o)| std::iter::once(*r).chain(*o))
        .collect();
    let ids_where = |has: fn(&StatusRow) -> bool| -> Vec<i64> {
        all.iter().filter(|r| has(r)).map(|r| r.id).collect()
    };
    let mention_ids = ids_where(|r| r.has_mentions);
    let tag_ids = ids_where(|r| r.has_tags);
    let poll_ids = ids_where(|r| r.has_poll);
    let card_ids = ids_where(|r| r.has_card);
    let media_ids: Vec<i64> = all
        .iter()
        .flat_map(|r| r.ordered_media_attachment_ids.iter().copied())
        .collect();

    let mut accounts: HashMap<i64, Account> = HashMap::new();
    for row in &all {
        if let Some(Json(author)) = &row.author {
            accounts
                .entry(author.id)
                .or_insert_with(|| account_json(author, state));
        }
    }

    let mentions: Vec<MentionRow> = if mention_ids.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(
            "SELECT m.status_id, a.id, a.username, a.domain, coalesce(a.url, a.uri) AS profile \
             FROM mentions m \
             JOIN accounts a ON a.id = m.account_id \
             WHERE m.status_id = ANY($1) ORDER BY m.id",
        )
        .bind(&mention_ids)
        .fetch_all(db)
        .await?
    };
    let mut mentions_of: HashMap<i64, Vec<Mention>> = HashMap::new();
    for MentionRow {
        status_id,
        id,
        username,
        domain,
        profile,
    } in mentions
    {
        // The profile page: a remote account's own (as its actor gave it), a local one's
        // under our base URL.
        let url = match (&domain, profile) {
            (None, _) => format!("{}/@{username}", state.base_url()),
            (Some(_), Some(profile)) => profile,
            (Some(d), None) => format!("https://{d}/@{username}"),
        };
        mentions_of.entry(status_id).or_default().push(Mention {
            id: id.to_string(),
            url,
            acct: match &domain {
                None => username.clone(),
                Some(d) => format!("{username}@{d}"),
            },
            username,
        });
    }

    let tags: Vec<(i64, String)> = if tag_ids.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(
            "SELECT st.status_id, t.name FROM statuses_tags st JOIN tags t ON t.id = st.tag_id \
             WHERE st.status_id = ANY($1) ORDER BY lower(t.name)",
        )
        .bind(&tag_ids)
        .fetch_all(db)
        .await?
    };
    let base = state.base_url();
    let mut tags_of: HashMap<i64, Vec<Tag>> = HashMap::new();
    for (status_id, name) in tags {
        tags_of.entry(status_id).or_default().push(Tag {
            url: format!("{base}/tags/{}", crate::text::percent_encode(&name)),
            name,
        });
    }

    let media: HashMap<String, MediaAttachment> = load_media(state, &media_ids)
        .await?
        .into_iter()
        .map(|m| (m.id.clone(), m))
        .collect();

    let polls = load_polls(db, &poll_ids, viewer).await?;
    let cards = load_cards(db, state, &card_ids).await?;
    // A viewer without filters (most) needs no filter lookup: as anonymous, nothing matches.
    let filter_viewer = viewer.filter(|_| all.iter().any(|r| r.viewer_filters));
    let filters = crate::api::filters::matching::Filters::of(db, filter_viewer).await?;

    let build = |row: &StatusRow, reblog: Option<Box<Status>>| -> Option<Status> {
        let account = accounts.get(&row.account_id)?.clone();
        let own = viewer == Some(row.account_id);
        let (uri, url) = match (&row.uri, row.reblog_of_id) {
            // A remote status links to its page on its server (Mastodon: the Note's `url`,
            // else its id), not to its ActivityPub id.
            (Some(uri), _) => (uri.clone(), row.url.clone().or_else(|| Some(uri.clone()))),
            (None, None) => (
                format!("{base}/users/{}/statuses/{}", account.username, row.id),
                Some(format!("{base}/@{}/{}", account.username, row.id)),
            ),
            (None, Some(_)) => {
                let activity = format!(
                    "{base}/users/{}/statuses/{}/activity",
                    account.username, row.id
                );
                (activity.clone(), Some(activity))
            }
        };
        // A reblog is filtered as what it shares, as in Mastodon.
        let filtered = match &reblog {
            Some(original) => original.filtered.clone(),
            None => filters
                .results(row.id, &row.spoiler_text, &row.content_html)
                .iter()
                .map(|r| serde_json::to_value(r).expect("entity serializes"))
                .collect(),
        };
        Some(Status {
            id: row.id.to_string(),
            uri,
            url,
            created_at: iso8601(row.created_at),
            account,
            content: row.content_html.clone(),
            spoiler_text: row.spoiler_text.clone(),
            visibility: row.visibility.clone(),
            sensitive: row.sensitive,
            language: row.language.clone(),
            in_reply_to_id: row.in_reply_to_id.map(|i| i.to_string()),
            in_reply_to_account_id: row.in_reply_to_account_id.map(|i| i.to_string()),
            reblog,
            media_attachments: row
                .ordered_media_attachment_ids
                .iter()
                .filter_map(|id| media.get(&id.to_string()).cloned())
                .collect(),
            mentions: mentions_of.get(&row.id).cloned().unwrap_or_default(),
            tags: tags_of.get(&row.id).cloned().unwrap_or_default(),
            emojis: Vec::new(),
            reblogs_count: row.reblogs_count,
            favourites_count: row.favourites_count,
            replies_count: row.replies_count,
            edited_at: row.edited_at.map(iso8601),
            favourited: viewer.map(|_| row.favourited),
            reblogged: viewer.map(|_| row.reblogged),
            muted: viewer.map(|_| false),
            bookmarked: viewer.map(|_| row.bookmarked),
            pinned: own.then_some(row.pinned),
            poll: polls.get(&row.id).cloned(),
            card: cards.get(&row.id).cloned(),
            application: match (own, &row.application_name) {
                (true, Some(name)) => Some(Application {
                    name: name.clone(),
                    website: row.application_website.clone(),
                }),
                _ => None,
            },
            filtered,
            text: None,
        })
    };
    Ok(shown
        .iter()
        .filter_map(|(row, original)| match original {
            None => build(row, None),
            Some(o) => {
                let inner = build(o, None)?;
                build(row, Some(Box::new(inner)))
            }
        })
        .collect())
}
