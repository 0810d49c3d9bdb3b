//! An account's collections: the outbox (its public and unlisted activities, paged by id
//! like Mastodon's), followers and following (paged by number), featured (pinned posts).

use serde::Deserialize;
use serde_json::{Value, json};

use super::actor::LocalAccount;
use super::note;
use crate::federation::urls;
use crate::state::AppState;

/// Mastodon's page sizes: 20 activities, 12 accounts.
const OUTBOX_PAGE: i64 = 20;
const ACCOUNTS_PAGE: i64 = 12;

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub page: Option<String>,
    pub max_id: Option<String>,
    pub min_id: Option<String>,
}

fn id_param(v: &Option<String>) -> Option<i64> {
    v.as_deref().and_then(|s| s.parse().ok())
}

const AS: &str = "https://www.w3.org/ns/activitystreams";

pub async fn outbox(
    state: &AppState,
    account: &LocalAccount,
    query: &PageQuery,
) -> Result<Value, sqlx::Error> {
    let base = format!("{}/outbox", urls::actor(state, &account.username));
    if query.page.is_none() {
        let (total,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM statuses WHERE account_id = $1 \
             AND visibility IN ('public', 'unlisted')",
        )
        .bind(account.id)
        .fetch_one(state.db.reader())
        .await?;
        return Ok(json!({
            "@context": AS,
            "id": base,
            "type": "OrderedCollection",
            "totalItems": total,
            "first": format!("{base}?page=true"),
            "last": format!("{base}?min_id=0&page=true"),
        }));
    }
    let (max_id, min_id) = (id_param(&query.max_id), id_param(&query.min_id));
    let rows = note::public_page(state, account.id, max_id, min_id, OUTBOX_PAGE).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(note::activity(state, row).await?);
    }
    let id = match (max_id, min_id) {
        (Some(m), _) => format!("{base}?max_id={m}&page=true"),
        (None, Some(m)) => format!("{base}?min_id={m}&page=true"),
        (None, None) => format!("{base}?page=true"),
    };
    let mut page = json!({
        "@context": [AS, note::context()[1].clone()],
        "id": id,
        "type": "OrderedCollectionPage",
        "partOf": base,
        "orderedItems": items,
    });
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        page["prev"] = json!(format!("{base}?min_id={}&page=true", first.id));
        if rows.len() as i64 == OUTBOX_PAGE || min_id.is_some() {
            page["next"] = json!(format!("{base}?max_id={}&page=true", last.id));
        }
    }
    Ok(page)
}

#[derive(Clone, Copy)]
pub enum Relation {
    Followers,
    Following,
}

pub async fn accounts(
    state: &AppState,
    account: &LocalAccount,
    relation: Relation,
    query: &PageQuery,
) -> Result<Value, sqlx::Error> {
    let actor = urls::actor(state, &account.username);
    let (base, count_sql, page_sql) = match relation {
        Relation::Followers => (
            format!("{actor}/followers"),
            "SELECT count(*) FROM follows WHERE target_account_id = $1",
            "SELECT a.username, a.domain FROM follows f JOIN accounts a ON a.id = f.account_id \
             WHERE f.target_account_id = $1 ORDER BY f.id DESC LIMIT $2 OFFSET $3",
        ),
        Relation::Following => (
            format!("{actor}/following"),
            "SELECT count(*) FROM follows WHERE account_id = $1",
            "SELECT a.username, a.domain FROM follows f \
             JOIN accounts a ON a.id = f.target_account_id \
             WHERE f.account_id = $1 ORDER BY f.id DESC LIMIT $2 OFFSET $3",
        ),
    };
    let (total,): (i64,) = sqlx::query_as(count_sql)
        .bind(account.id)
        .fetch_one(state.db.reader())
        .await?;
    // A hidden social graph: its size only, whatever page is asked for (Mastodon).
    if account.hide_collections {
        return Ok(json!({
            "@context": AS,
            "id": base,
            "type": "OrderedCollection",
            "totalItems": total,
        }));
    }
    let Some(page) = query
        .page
        .as_deref()
        .map(|p| p.parse::<i64>().unwrap_or(1).max(1))
    else {
        return Ok(json!({
            "@context": AS,
            "id": base,
            "type": "OrderedCollection",
            "totalItems": total,
            "first": format!("{base}?page=1"),
        }));
    };
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(page_sql)
        .bind(account.id)
        .bind(ACCOUNTS_PAGE)
        .bind((page - 1).saturating_mul(ACCOUNTS_PAGE))
        .fetch_all(state.db.reader())
        .await?;
    let items: Vec<String> = rows
        .iter()
        .map(|(u, d)| urls::account_actor(state, u, d.as_deref()))
        .collect();
    let mut doc = json!({
        "@context": AS,
        "id": format!("{base}?page={page}"),
        "type": "OrderedCollectionPage",
        "totalItems": total,
        "partOf": base,
        "orderedItems": items,
    });
    if page * ACCOUNTS_PAGE < total {
        doc["next"] = json!(format!("{base}?page={}", page + 1));
    }
    if page > 1 {
        doc["prev"] = json!(format!("{base}?page={}", page - 1));
    }
    Ok(doc)
}

/// Pinned public and unlisted posts, as Notes.
pub async fn featured(state: &AppState, account: &LocalAccount) -> Result<Value, sqlx::Error> {
    let ids: Vec<(i64,)> = sqlx::query_as(
        "SELECT s.id FROM status_pins p JOIN statuses s ON s.id = p.status_id \
         WHERE p.account_id = $1 AND s.account_id = $1 \
           AND s.visibility IN ('public', 'unlisted') \
         ORDER BY p.id DESC",
    )
    .bind(account.id)
    .fetch_all(state.db.reader())
    .await?;
    let mut items = Vec::new();
    for (id,) in ids {
        if let Some(row) = note::find(state, &account.username, id).await? {
            items.push(note::note(state, &row).await?);
        }
    }
    Ok(json!({
        "@context": [AS, note::context()[1].clone()],
        "id": format!("{}/collections/featured", urls::actor(state, &account.username)),
        "type": "OrderedCollection",
        "totalItems": items.len(),
        "orderedItems": items,
    }))
}
