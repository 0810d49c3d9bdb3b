//! The worker's `search.index` job: after a status (or account) is written or deleted, its
//! document in the current index is replaced or removed. The job reads the row when it
//! runs, so retries and reordered jobs converge on what PostgreSQL holds.

use anyhow::Context;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::warn;

use super::client::{Body, SearchClient, reason};
use super::documents;
use super::mappings::{ACCOUNTS, IndexSpec, STATUSES};
use crate::jobs::{self, JobError, Queue, Registry};
use crate::state::AppState;

pub const INDEX: &str = "search.index";

/// About an hour of back-off: a search cluster that is down longer needs a reindex anyway.
const MAX_RETRIES: u32 = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexJob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<i64>,
}

pub fn register(r: &mut Registry) {
    r.register(INDEX, MAX_RETRIES, |state, args| async move {
        let job: IndexJob = jobs::args(args)?;
        index(&state, &job).await.map_err(JobError::retry)
    });
}

/// After status `id` was created, edited or deleted. Nothing is queued without a search
/// cluster; a failure to queue is logged (the next reindex repairs the document).
pub async fn enqueue_status(state: &AppState, id: i64) {
    enqueue(
        state,
        IndexJob {
            status_id: Some(id),
            account_id: None,
        },
    )
    .await;
}

/// After account `id` changed what is searched in it (names, note, suspension).
pub async fn enqueue_account(state: &AppState, id: i64) {
    enqueue(
        state,
        IndexJob {
            status_id: None,
            account_id: Some(id),
        },
    )
    .await;
}

async fn enqueue(state: &AppState, job: IndexJob) {
    if state.config.search.is_none() {
        return;
    }
    let args = serde_json::to_value(job).expect("job arguments serialize");
    if let Err(e) = jobs::enqueue(state, Queue::Default, INDEX, args).await {
        warn!(error = %e, "cannot queue a search index job");
    }
}

pub async fn index(state: &AppState, job: &IndexJob) -> anyhow::Result<()> {
    let Some(config) = &state.config.search else {
        return Ok(());
    };
    let client = SearchClient::shared(config)?;
    if let Some(id) = job.status_id {
        sync(state, client, STATUSES, id).await?;
    }
    if let Some(id) = job.account_id {
        sync(state, client, ACCOUNTS, id).await?;
    }
    Ok(())
}

async fn sync(
    state: &AppState,
    client: &SearchClient,
    spec: IndexSpec,
    id: i64,
) -> anyhow::Result<()> {
    // The primary: the job runs right after the commit, before a replica may have it.
    let doc = documents::one(state.db.primary(), spec.kind, id)
        .await
        .context("reading the document from PostgreSQL")?;
    let alias = spec.alias(&client.prefix);
    let (status, v) = match doc {
        // require_alias: never let a cluster auto-create a mapping-less index under the
        // alias's name before `admin search migrate` ran.
        Some(doc) => {
            client
                .send(
                    Method::PUT,
                    &format!("/{alias}/_doc/{id}?require_alias=true"),
                    Some(Body::Json(doc)),
                )
                .await?
        }
        None => {
            client
                .send(Method::DELETE, &format!("/{alias}/_doc/{id}"), None)
                .await?
        }
    };
    let missing_index = matches!(
        v.pointer("/error/type").and_then(Value::as_str),
        Some("index_not_found_exception")
    );
    if missing_index {
        // Not migrated yet: the migration will read this row from PostgreSQL.
        warn!(
            alias,
            "search index missing: run `fedi-server admin search migrate`"
        );
        return Ok(());
    }
    if status.is_success() || status == StatusCode::NOT_FOUND {
        return Ok(());
    }
    anyhow::bail!(
        "OpenSearch: indexing {alias}/{id} answered {status}: {}",
        reason(&v)
    )
}
