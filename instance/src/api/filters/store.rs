//! Mastodon's `Filter`, `FilterKeyword` and `FilterStatus` entities, read in three queries
//! for any number of filters.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::PgPool;
use sqlx::types::chrono::{DateTime, Utc};

use crate::api::entities::account::iso8601;

#[derive(Clone, Debug, Serialize)]
pub struct FilterKeyword {
    pub id: String,
    pub keyword: String,
    pub whole_word: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct FilterStatus {
    pub id: String,
    pub status_id: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Filter {
    pub id: String,
    pub title: String,
    pub context: Vec<String>,
    pub expires_at: Option<String>,
    pub filter_action: String,
    pub keywords: Vec<FilterKeyword>,
    pub statuses: Vec<FilterStatus>,
}

/// id, title, context, action, expires_at.
type FilterRow = (i64, String, Vec<String>, String, Option<DateTime<Utc>>);

/// `owner`'s filters (only filter `only` when given; only unexpired ones when `active`),
/// oldest first.
pub async fn load_filters(
    db: &PgPool,
    owner: i64,
    only: Option<i64>,
    active: bool,
) -> Result<Vec<Filter>, sqlx::Error> {
    let rows: Vec<FilterRow> = sqlx::query_as(
        "SELECT id, title, context, action, expires_at FROM custom_filters \
         WHERE account_id = $1 AND ($2::bigint IS NULL OR id = $2) \
           AND (NOT $3 OR expires_at IS NULL OR expires_at > now()) ORDER BY id",
    )
    .bind(owner)
    .bind(only)
    .bind(active)
    .fetch_all(db)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let keywords: Vec<(i64, i64, String, bool)> = sqlx::query_as(
        "SELECT custom_filter_id, id, keyword, whole_word FROM custom_filter_keywords \
         WHERE custom_filter_id = ANY($1) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(db)
    .await?;
    let statuses: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT custom_filter_id, id, status_id FROM custom_filter_statuses \
         WHERE custom_filter_id = ANY($1) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(db)
    .await?;
    let mut keywords_of: HashMap<i64, Vec<FilterKeyword>> = HashMap::new();
    for (filter, id, keyword, whole_word) in keywords {
        keywords_of.entry(filter).or_default().push(FilterKeyword {
            id: id.to_string(),
            keyword,
            whole_word,
        });
    }
    let mut statuses_of: HashMap<i64, Vec<FilterStatus>> = HashMap::new();
    for (filter, id, status_id) in statuses {
        statuses_of.entry(filter).or_default().push(FilterStatus {
            id: id.to_string(),
            status_id: status_id.to_string(),
        });
    }
    Ok(rows
        .into_iter()
        .map(|(id, title, context, action, expires_at)| Filter {
            id: id.to_string(),
            title,
            context,
            expires_at: expires_at.map(iso8601),
            filter_action: action,
            keywords: keywords_of.remove(&id).unwrap_or_default(),
            statuses: statuses_of.remove(&id).unwrap_or_default(),
        })
        .collect())
}
