//! Actor documents: a local account as a `Person` (`Service` for bots), and the instance
//! actor (`Application`) that signs our fetches. Shaped after Mastodon's, which is what
//! every other implementation has learned to read.

use serde_json::{Value, json};
use sqlx::types::Json;
use sqlx::types::chrono::{DateTime, Utc};

use crate::api::entities::account::{StoredField, iso8601};
use crate::api::entities::html;
use crate::federation::urls;
use crate::state::AppState;

/// Mastodon's actor context: the `toot:` and `schema:` terms peers look for
/// (`manuallyApprovesFollowers`, `discoverable`, `PropertyValue` fields, `featured`...).
pub fn context() -> Value {
    json!([
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/v1",
        {
            "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
            "toot": "http://joinmastodon.org/ns#",
            "featured": {"@id": "toot:featured", "@type": "@id"},
            "featuredTags": {"@id": "toot:featuredTags", "@type": "@id"},
            "alsoKnownAs": {"@id": "as:alsoKnownAs", "@type": "@id"},
            "movedTo": {"@id": "as:movedTo", "@type": "@id"},
            "schema": "http://schema.org#",
            "PropertyValue": "schema:PropertyValue",
            "value": "schema:value",
            "discoverable": "toot:discoverable",
            "indexable": "toot:indexable",
            "suspended": "toot:suspended",
            "memorial": "toot:memorial",
            "focalPoint": {"@container": "@list", "@id": "toot:focalPoint"},
            "Emoji": "toot:Emoji",
            "blurhash": "toot:blurhash",
            "sensitive": "as:sensitive",
            "Hashtag": "as:Hashtag"
        }
    ])
}

#[derive(Debug, sqlx::FromRow)]
pub struct LocalAccount {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub note: String,
    pub locked: bool,
    pub bot: bool,
    pub discoverable: bool,
    /// Followers and following are shown as counts only.
    pub hide_collections: bool,
    pub avatar_key: Option<String>,
    pub header_key: Option<String>,
    pub fields: Json<Vec<StoredField>>,
    pub created_at: DateTime<Utc>,
}

/// A local, unsuspended account by username (case-insensitive, as WebFinger is).
pub async fn find_local(
    state: &AppState,
    username: &str,
) -> Result<Option<LocalAccount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, username, display_name, note, locked, bot, discoverable, hide_collections, \
                avatar_key, \
                header_key, fields, created_at \
         FROM accounts \
         WHERE lower(username) = lower($1) AND domain IS NULL AND suspended_at IS NULL",
    )
    .bind(username)
    .fetch_optional(state.db.reader())
    .await
}

/// `image/png` from `....png`: the bucket keys end with the extension of the type the
/// upload was verified to be.
fn media_type(key: &str) -> Option<&'static str> {
    match key.rsplit_once('.')?.1 {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        _ => None,
    }
}

fn image(state: &AppState, key: &Option<String>) -> Value {
    match (key, &state.storage) {
        (Some(key), Some(storage)) => {
            let mut image = json!({"type": "Image", "url": storage.public_url(key)});
            if let Some(t) = media_type(key) {
                image["mediaType"] = json!(t);
            }
            image
        }
        _ => Value::Null,
    }
}

pub fn person(state: &AppState, account: &LocalAccount, public_key_pem: &str) -> Value {
    let id = urls::actor(state, &account.username);
    let mut actor = json!({
        "@context": context(),
        "id": id,
        "type": if account.bot { "Service" } else { "Person" },
        "following": format!("{id}/following"),
        "followers": urls::followers(state, &account.username),
        "inbox": format!("{id}/inbox"),
        "outbox": format!("{id}/outbox"),
        "featured": format!("{id}/collections/featured"),
        "featuredTags": format!("{id}/collections/tags"),
        "preferredUsername": account.username,
        "name": account.display_name,
        "summary": html::paragraphs(&account.note),
        "url": urls::profile(state, &account.username),
        "manuallyApprovesFollowers": account.locked,
        "discoverable": account.discoverable,
        "indexable": false,
        "published": iso8601(account.created_at.date_naive().and_time(Default::default()).and_utc()),
        "memorial": false,
        "publicKey": {
            "id": urls::key_id(state, &account.username),
            "owner": id,
            "publicKeyPem": public_key_pem,
        },
        "tag": [],
        "attachment": account.fields.iter().map(|f| json!({
            "type": "PropertyValue",
            "name": f.name,
            "value": html::field_value(&f.value),
        })).collect::<Vec<_>>(),
        "endpoints": {"sharedInbox": urls::shared_inbox(state)},
    });
    for (name, key) in [
        ("icon", &account.avatar_key),
        ("image", &account.header_key),
    ] {
        let value = image(state, key);
        if !value.is_null() {
            actor[name] = value;
        }
    }
    actor
}

/// The instance actor: named after the domain (as Mastodon's), locked, not discoverable;
/// it only exists to sign fetches and to be fetched for its key.
pub fn instance_actor(state: &AppState, public_key_pem: &str) -> Value {
    let id = urls::instance_actor(state);
    json!({
        "@context": context(),
        "id": id,
        "type": "Application",
        "inbox": format!("{id}/inbox"),
        "outbox": format!("{id}/outbox"),
        "preferredUsername": state.config.domain,
        "url": format!("{}/about/more?instance_actor=true", state.base_url()),
        "manuallyApprovesFollowers": true,
        "discoverable": false,
        "indexable": false,
        "publicKey": {
            "id": urls::instance_key_id(state),
            "owner": id,
            "publicKeyPem": public_key_pem,
        },
        "endpoints": {"sharedInbox": urls::shared_inbox(state)},
    })
}
