//! Public keys of remote actors, by `keyId`: fetched once (signed by the instance actor,
//! through the guarded [`Fetcher`]) and cached in PostgreSQL, fetched again when a
//! signature fails against the cached key (the actor may have rotated it).

use serde_json::Value;
use url::Url;

use super::fetch::{FetchError, Fetcher};
use super::keys::{PublicKey, Signer};
use crate::db::Database;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot fetch key {key_id}: {source}")]
    Fetch {
        key_id: String,
        #[source]
        source: FetchError,
    },
    #[error("key {0} is not published by its document")]
    NotFound(String),
    #[error("key {key_id} is unusable: {reason}")]
    Unusable { key_id: String, reason: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A key and the actor it belongs to.
#[derive(Debug, Clone)]
pub struct RemoteKey {
    pub owner: String,
    pub key: PublicKey,
}

/// The cached key `key_id`, or `None`.
pub async fn cached(db: &Database, key_id: &str) -> Result<Option<RemoteKey>, KeyError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT owner, public_key_pem FROM remote_keys WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(db.reader())
            .await?;
    row.map(|(owner, pem)| {
        Ok(RemoteKey {
            owner,
            key: PublicKey::from_pem(&pem).map_err(|reason| KeyError::Unusable {
                key_id: key_id.to_string(),
                reason,
            })?,
        })
    })
    .transpose()
}

/// Fetches `key_id` from its origin and caches it (replacing a previous version).
pub async fn fetch(
    db: &Database,
    fetcher: &Fetcher,
    signer: &Signer,
    key_id: &str,
) -> Result<RemoteKey, KeyError> {
    let document = fetcher
        .get_object(key_id, signer)
        .await
        .map_err(|source| KeyError::Fetch {
            key_id: key_id.to_string(),
            source,
        })?;
    let (owner, pem) = key_from_document(&document, key_id)?;
    let key = PublicKey::from_pem(&pem).map_err(|reason| KeyError::Unusable {
        key_id: key_id.to_string(),
        reason,
    })?;
    sqlx::query(
        "INSERT INTO remote_keys (key_id, owner, public_key_pem) VALUES ($1, $2, $3) \
         ON CONFLICT (key_id) DO UPDATE SET owner = EXCLUDED.owner, \
             public_key_pem = EXCLUDED.public_key_pem, fetched_at = now()",
    )
    .bind(key_id)
    .bind(&owner)
    .bind(&pem)
    .execute(db.primary())
    .await?;
    Ok(RemoteKey { owner, key })
}

/// `(owner, pem)` of `key_id` in a fetched document: an actor whose `publicKey` (one or a
/// list) has that id and names the actor as owner (Mastodon, `#main-key`), or the key
/// document itself (GoToSocial's fragmentless `.../main-key`), whose owner must live on the
/// same host. The fetcher has already checked that the document's id is its URL.
pub fn key_from_document(document: &Value, key_id: &str) -> Result<(String, String), KeyError> {
    let not_found = || KeyError::NotFound(key_id.to_string());
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(pem) = str_of(document, "publicKeyPem") {
        let owner = str_of(document, "owner").ok_or_else(not_found)?;
        if host(&owner) != host(key_id) || host(key_id).is_none() {
            return Err(not_found());
        }
        return Ok((owner, pem));
    }
    let actor_id = str_of(document, "id").ok_or_else(not_found)?;
    let keys: Vec<&Value> = match document.get("publicKey") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => return Err(not_found()),
    };
    keys.into_iter()
        .find(|k| str_of(k, "id").as_deref() == Some(key_id))
        .and_then(|k| {
            // A missing owner means the actor carrying it (some implementations omit it).
            let owner = str_of(k, "owner").unwrap_or_else(|| actor_id.clone());
            (owner == actor_id).then(|| str_of(k, "publicKeyPem").map(|pem| (owner, pem)))?
        })
        .ok_or_else(not_found)
}

/// Lower-cased host of a URL.
pub fn host(url: &str) -> Option<String> {
    Url::parse(url)
        .ok()?
        .host_str()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_found_in_actors_and_key_documents() {
        let actor = json!({
            "id": "https://m.example/users/bob",
            "publicKey": {"id": "https://m.example/users/bob#main-key",
                          "owner": "https://m.example/users/bob", "publicKeyPem": "PEM"}
        });
        assert_eq!(
            key_from_document(&actor, "https://m.example/users/bob#main-key").unwrap(),
            ("https://m.example/users/bob".into(), "PEM".into())
        );
        // Another key id than the one on the document.
        assert!(key_from_document(&actor, "https://m.example/users/bob#other").is_err());
        // A key claiming another owner than the actor carrying it.
        let stolen = json!({
            "id": "https://m.example/users/bob",
            "publicKey": {"id": "https://m.example/users/bob#main-key",
                          "owner": "https://m.example/users/alice", "publicKeyPem": "PEM"}
        });
        assert!(key_from_document(&stolen, "https://m.example/users/bob#main-key").is_err());
        let gts = json!({
            "id": "https://g.example/users/bob/main-key",
            "owner": "https://g.example/users/bob", "publicKeyPem": "PEM"
        });
        assert_eq!(
            key_from_document(&gts, "https://g.example/users/bob/main-key")
                .unwrap()
                .0,
            "https://g.example/users/bob"
        );
        let elsewhere = json!({
            "id": "https://g.example/users/bob/main-key",
            "owner": "https://evil.example/users/bob", "publicKeyPem": "PEM"
        });
        assert!(key_from_document(&elsewhere, "https://g.example/users/bob/main-key").is_err());
    }
}
