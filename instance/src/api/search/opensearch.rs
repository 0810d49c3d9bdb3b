//! Statuses searched in OpenSearch (`FEDI_SEARCH_URL`). OpenSearch finds the candidates
//! (text and the plain filters); PostgreSQL then applies the same rules as its own search
//! (visibility, interactions, blocks, mutes) to those ids, so an index that lags behind a
//! deletion or a visibility change never shows a viewer what they may not see.
//!
//! If the cluster fails or has no index yet, PostgreSQL's search answers instead: search
//! degrades, it does not break.

use fedi_config::SearchConfig;
use hyper::Method;
use serde_json::{Value, json};
use tracing::warn;

use super::backend::{StatusIndex, StatusSearch, filtered};
use super::query::Scope;
use crate::api::ApiError;
use crate::search::client::Body;
use crate::search::{STATUSES, SearchClient};
use crate::state::AppState;

/// Candidates fetched beyond the requested page: visibility checks in PostgreSQL drop
/// some, and a page should still fill up. Matches past this depth are not reached.
const CANDIDATES: i64 = 1000;

pub struct OpenSearch<'a> {
    state: &'a AppState,
    config: &'a SearchConfig,
}

impl<'a> OpenSearch<'a> {
    pub fn new(state: &'a AppState, config: &'a SearchConfig) -> Self {
        Self { state, config }
    }

    async fn candidates(&self, s: &StatusSearch) -> anyhow::Result<Vec<i64>> {
        let client = SearchClient::shared(self.config)?;
        let body = query(s);
        let path = format!("/{}/_search", STATUSES.alias(&client.prefix));
        let v = client
            .ok(Method::POST, &path, Some(Body::Json(body)))
            .await?;
        Ok(v.pointer("/hits/hits")
            .and_then(Value::as_array)
            .map(|hits| {
                hits.iter()
                    .filter_map(|h| h.get("_id")?.as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl StatusIndex for OpenSearch<'_> {
    async fn search(&self, s: &StatusSearch) -> Result<Vec<i64>, ApiError> {
        match self.candidates(s).await {
            Ok(ids) => filtered(self.state, s, Some(&ids)).await,
            Err(e) => {
                warn!(error = %e, "OpenSearch search failed; answering from PostgreSQL");
                filtered(self.state, s, None).await
            }
        }
    }
}

/// The OpenSearch query of a search: newest first, as the PostgreSQL search orders.
pub fn query(s: &StatusSearch) -> Value {
    let q = &s.query;
    let mut filter = Vec::new();
    if let Some(a) = s.account_id {
        filter.push(json!({ "term": { "account_id": a } }));
    }
    let mut id_range = serde_json::Map::new();
    if let Some(max) = s.max_id {
        id_range.insert("lt".into(), json!(max));
    }
    if let Some(min) = s.min_id {
        id_range.insert("gt".into(), json!(min));
    }
    if !id_range.is_empty() {
        filter.push(json!({ "range": { "id": id_range } }));
    }
    for (field, value) in [
        ("has_media", q.has_media),
        ("has_poll", q.has_poll),
        ("is_reply", q.is_reply),
        ("sensitive", q.is_sensitive),
    ] {
        if let Some(v) = value {
            filter.push(json!({ "term": { field: v } }));
        }
    }
    if let Some(l) = &q.language {
        filter.push(json!({ "term": { "language": l } }));
    }
    let mut date_range = serde_json::Map::new();
    if let Some(b) = q.before {
        date_range.insert("lt".into(), json!(b.to_rfc3339()));
    }
    if let Some(a) = q.after {
        date_range.insert("gte".into(), json!(a.to_rfc3339()));
    }
    if !date_range.is_empty() {
        filter.push(json!({ "range": { "created_at": date_range } }));
    }
    if q.scope == Scope::Public {
        filter.push(json!({ "term": { "visibility": "public" } }));
    }
    let must = if q.text.is_empty() {
        json!({ "match_all": {} })
    } else {
        // websearch_to_tsquery's syntax, near enough: "phrases", -exclusions, `or` as `|`.
        json!({ "simple_query_string": {
            "query": q.text.replace(" or ", " | ").replace(" OR ", " | "),
            "fields": ["text"],
            "default_operator": "and"
        } })
    };
    json!({
        "size": CANDIDATES + s.offset,
        "_source": false,
        "sort": [{ "id": "desc" }],
        "query": { "bool": { "must": [must], "filter": filter } }
    })
}
