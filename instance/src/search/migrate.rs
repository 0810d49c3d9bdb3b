//! `admin search migrate`: make the alias of each index name the index of the current
//! mapping version, building that index from PostgreSQL when it does not.
//!
//! Idempotent: with the alias already on the current version nothing is written, so an
//! upgrade that did not change a mapping costs one request per index. An interrupted
//! run leaves the alias where it was and is simply run again (documents are written by
//! id, so a half-built index is completed, not duplicated). The previous version's index
//! is kept for a rollback to the previous server version; delete it once that is moot.

use anyhow::Context;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::client::{Body, SearchClient, reason};
use super::documents;
use super::mappings::IndexSpec;

/// Documents per `_bulk` request.
const BATCH: i64 = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The alias already named this version: nothing done.
    UpToDate,
    /// The index was built and the alias now names it.
    Reindexed {
        documents: u64,
        previous: Option<String>,
    },
}

/// The indices `alias` names (none when it does not exist).
pub async fn alias_targets(client: &SearchClient, alias: &str) -> anyhow::Result<Vec<String>> {
    let (status, v) = client
        .send(Method::GET, &format!("/_alias/{alias}"), None)
        .await?;
    if status == StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    if !status.is_success() {
        anyhow::bail!(
            "OpenSearch: reading alias {alias} answered {status}: {}",
            reason(&v)
        );
    }
    Ok(v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default())
}

/// Brings `spec` up to date; `progress` gets one line per step for the operator.
pub async fn migrate(
    client: &SearchClient,
    db: &mut PgConnection,
    spec: IndexSpec,
    progress: &mut dyn FnMut(String),
) -> anyhow::Result<Outcome> {
    let alias = spec.alias(&client.prefix);
    let index = spec.index(&client.prefix);
    let current = alias_targets(client, &alias).await?;
    if current == [index.clone()] {
        progress(format!("{alias}: up to date (version {})", spec.version));
        return Ok(Outcome::UpToDate);
    }
    progress(format!(
        "{alias}: building {index} (alias now on {})",
        if current.is_empty() {
            "nothing".into()
        } else {
            current.join(", ")
        }
    ));
    let (status, v) = client
        .send(
            Method::PUT,
            &format!("/{index}"),
            Some(Body::Json((spec.body)())),
        )
        .await?;
    let exists = v.pointer("/error/type").and_then(Value::as_str)
        == Some("resource_already_exists_exception");
    if !status.is_success() && !exists {
        anyhow::bail!(
            "OpenSearch: creating {index} answered {status}: {}",
            reason(&v)
        );
    }
    // No refreshes while bulk loading; restored before the alias moves.
    client
        .ok(
            Method::PUT,
            &format!("/{index}/_settings"),
            Some(Body::Json(json!({ "index": { "refresh_interval": "-1" } }))),
        )
        .await?;
    let mut after = i64::MIN;
    let mut total = 0u64;
    loop {
        let docs = documents::batch(&mut *db, spec.kind, after, BATCH)
            .await
            .context("reading documents from PostgreSQL")?;
        let Some(&(last, _)) = docs.last() else { break };
        bulk_index(client, &index, &docs).await?;
        total += docs.len() as u64;
        after = last;
        progress(format!("{alias}: {total} documents indexed"));
    }
    client
        .ok(
            Method::PUT,
            &format!("/{index}/_settings"),
            Some(Body::Json(json!({ "index": { "refresh_interval": null } }))),
        )
        .await?;
    client
        .ok(Method::POST, &format!("/{index}/_refresh"), None)
        .await?;
    // One atomic request: readers never see the alias missing or on two indices.
    let mut actions: Vec<Value> = current
        .iter()
        .filter(|i| **i != index)
        .map(|i| json!({ "remove": { "index": i, "alias": alias } }))
        .collect();
    actions.push(json!({ "add": { "index": index, "alias": alias, "is_write_index": true } }));
    client
        .ok(
            Method::POST,
            "/_aliases",
            Some(Body::Json(json!({ "actions": actions }))),
        )
        .await?;
    // Statuses posted while the index was built went to the old index only (through the
    // alias); from the swap on the job writes here, so one pass past `after` catches up.
    // Edits made meanwhile keep their old text until the row is written again; deletions
    // and visibility changes are safe, PostgreSQL re-checks every hit.
    loop {
        let docs = documents::batch(&mut *db, spec.kind, after, BATCH)
            .await
            .context("reading documents from PostgreSQL")?;
        let Some(&(last, _)) = docs.last() else { break };
        bulk_index(client, &index, &docs).await?;
        total += docs.len() as u64;
        after = last;
        progress(format!("{alias}: {total} documents indexed (catching up)"));
    }
    let previous = current.into_iter().find(|i| *i != index);
    progress(format!(
        "{alias}: now on {index} ({total} documents){}",
        previous
            .as_ref()
            .map(|p| format!("; {p} kept for a rollback"))
            .unwrap_or_default()
    ));
    Ok(Outcome::Reindexed {
        documents: total,
        previous,
    })
}

/// Writes `docs` into `index` by id, failing on the first item OpenSearch refused.
pub async fn bulk_index(
    client: &SearchClient,
    index: &str,
    docs: &[(i64, Value)],
) -> anyhow::Result<()> {
    let mut body = String::new();
    for (id, doc) in docs {
        body.push_str(&json!({ "index": { "_index": index, "_id": id.to_string() } }).to_string());
        body.push('\n');
        body.push_str(&doc.to_string());
        body.push('\n');
    }
    let v = client
        .ok(Method::POST, "/_bulk", Some(Body::NdJson(body)))
        .await?;
    if v.get("errors").and_then(Value::as_bool) == Some(true) {
        let first = v
            .get("items")
            .and_then(Value::as_array)
            .and_then(|items| {
                items
                    .iter()
                    .find_map(|i| i.pointer("/index/error").cloned())
            })
            .unwrap_or(Value::Null);
        anyhow::bail!("OpenSearch refused a document of {index}: {first}");
    }
    Ok(())
}
