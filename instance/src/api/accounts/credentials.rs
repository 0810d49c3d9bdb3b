//! The signed-in user's own profile: `verify_credentials`, `update_credentials`, and the
//! removal of the avatar or header.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;
use sqlx::types::Json as SqlJson;
use tracing::warn;

use super::media::{self, Image, Slot};
use crate::api::ApiError;
use crate::api::entities::CredentialAccount;
use crate::api::entities::account::{StoredField, load_credential_account};
use crate::api::params::{Params, flex};
use crate::auth::Auth;
use crate::state::AppState;

const DISPLAY_NAME_MAX: usize = 30;
const NOTE_MAX: usize = 500;
const FIELDS_MAX: usize = 4;
const FIELD_NAME_MAX: usize = 255;
const FIELD_VALUE_MAX: usize = 255;
const PRIVACIES: &[&str] = &["public", "unlisted", "private", "direct"];

/// A request carrying both images at their limit, plus the text fields.
pub const UPDATE_BODY_LIMIT: usize = 2 * media::MAX_IMAGE_BYTES + 1024 * 1024;

pub async fn verify(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<CredentialAccount>, ApiError> {
    // `profile` is the narrow scope made for "who is this user" (Mastodon 4.3).
    if !auth.scopes.allows("read:accounts") && !auth.scopes.allows("profile") {
        return Err(ApiError::OutOfScope);
    }
    let user = auth.user()?;
    own_account(&state, user.account_id).await
}

async fn own_account(
    state: &AppState,
    account_id: i64,
) -> Result<Json<CredentialAccount>, ApiError> {
    load_credential_account(state.db.primary(), account_id, state)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

#[derive(Debug, Default, Deserialize)]
pub struct UpdateParams {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    locked: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    bot: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    discoverable: Option<bool>,
    /// `{"0": {"name", "value"}, ...}` from forms, or an array from JSON clients.
    #[serde(default)]
    fields_attributes: Option<Value>,
    #[serde(default)]
    source: Option<SourceParams>,
    /// An extension (Mastodon sets it in its web settings only): see `chosen_languages`.
    #[serde(default, deserialize_with = "super::chosen_languages::present")]
    chosen_languages: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SourceParams {
    #[serde(default)]
    privacy: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    sensitive: Option<bool>,
    #[serde(default)]
    language: Option<String>,
}

fn too_long(field: &str, max: usize) -> ApiError {
    ApiError::validation(field, &format!("is too long (maximum is {max} characters)"))
}

fn bounded(field: &str, text: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match text {
        Some(t) if t.chars().count() > max => Err(too_long(field, max)),
        t => Ok(t),
    }
}

/// Profile fields in order; entries with neither name nor value are dropped (that is how
/// clients remove one).
pub fn parse_fields(value: Value) -> Result<Vec<StoredField>, ApiError> {
    let entries = match value {
        Value::Null => Vec::new(),
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::Array(items) => items,
        Value::Object(map) => {
            let mut items: Vec<(String, Value)> = map.into_iter().collect();
            items.sort_by_key(|(k, _)| (k.parse::<u64>().unwrap_or(u64::MAX), k.clone()));
            items.into_iter().map(|(_, v)| v).collect()
        }
        _ => {
            return Err(ApiError::validation(
                "fields_attributes",
                "must be a list of name and value pairs",
            ));
        }
    };
    let text = |entry: &Value, key: &str| -> Result<String, ApiError> {
        match entry.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(_) => Err(ApiError::validation("fields_attributes", "must hold text")),
        }
    };
    let mut fields = Vec::new();
    for entry in &entries {
        if !entry.is_object() {
            return Err(ApiError::validation(
                "fields_attributes",
                "must be a list of name and value pairs",
            ));
        }
        let (name, value) = (text(entry, "name")?, text(entry, "value")?);
        if name.trim().is_empty() && value.trim().is_empty() {
            continue;
        }
        if name.chars().count() > FIELD_NAME_MAX {
            return Err(too_long("Field name", FIELD_NAME_MAX));
        }
        if value.chars().count() > FIELD_VALUE_MAX {
            return Err(too_long("Field value", FIELD_VALUE_MAX));
        }
        fields.push(StoredField { name, value });
    }
    if fields.len() > FIELDS_MAX {
        return Err(ApiError::Validation(format!(
            "Fields are too many (maximum is {FIELDS_MAX})"
        )));
    }
    Ok(fields)
}

/// `Some(None)` clears the language, `None` leaves it.
fn parse_language(language: Option<String>) -> Result<Option<Option<String>>, ApiError> {
    match language.as_deref().map(str::trim) {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(l) if (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase()) => {
            Ok(Some(Some(l.to_string())))
        }
        Some(_) => Err(ApiError::validation(
            "Language",
            "is not included in the list",
        )),
    }
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Params { value: p, files }: Params<UpdateParams>,
) -> Result<Json<CredentialAccount>, ApiError> {
    auth.require("write:accounts")?;
    let account_id = auth.user()?.account_id;

    let display_name = bounded("Display name", p.display_name, DISPLAY_NAME_MAX)?;
    let note = bounded("Note", p.note, NOTE_MAX)?;
    let fields = p.fields_attributes.map(parse_fields).transpose()?;
    let source = p.source.unwrap_or_default();
    if let Some(privacy) = &source.privacy
        && !PRIVACIES.contains(&privacy.as_str())
    {
        return Err(ApiError::validation(
            "Privacy",
            "is not included in the list",
        ));
    }
    let language = parse_language(source.language)?;
    let chosen_languages = super::chosen_languages::parse(p.chosen_languages)?;

    let mut images: Vec<Image> = Vec::new();
    for upload in &files {
        let Some(slot) = [Slot::Avatar, Slot::Header]
            .into_iter()
            .find(|s| s.field() == upload.field)
        else {
            continue;
        };
        let image = media::check(slot, upload)?;
        images.retain(|i| i.slot != slot);
        images.push(image);
    }
    let stored = store_images(&state, account_id, &images).await?;
    let new_key = |slot: Slot| {
        stored
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, k)| k.clone())
    };

    let saved = async {
        let mut tx = state.db.begin().await?;
        let (old_avatar, old_header): (Option<String>, Option<String>) =
            sqlx::query_as("SELECT avatar_key, header_key FROM accounts WHERE id = $1 FOR UPDATE")
                .bind(account_id)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "UPDATE accounts SET display_name = coalesce($2, display_name), \
                note = coalesce($3, note), locked = coalesce($4, locked), \
                bot = coalesce($5, bot), discoverable = coalesce($6, discoverable), \
                fields = coalesce($7, fields), avatar_key = coalesce($8, avatar_key), \
                header_key = coalesce($9, header_key), updated_at = now() \
             WHERE id = $1",
        )
        .bind(account_id)
        .bind(&display_name)
        .bind(&note)
        .bind(p.locked)
        .bind(p.bot)
        .bind(p.discoverable)
        .bind(fields.as_ref().map(SqlJson))
        .bind(new_key(Slot::Avatar))
        .bind(new_key(Slot::Header))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE users SET default_privacy = coalesce($2, default_privacy), \
                default_sensitive = coalesce($3, default_sensitive), \
                default_language = CASE WHEN $4 THEN $5 ELSE default_language END, \
                chosen_languages = CASE WHEN $6 THEN $7 ELSE chosen_languages END \
             WHERE account_id = $1",
        )
        .bind(account_id)
        .bind(&source.privacy)
        .bind(source.sensitive)
        .bind(language.is_some())
        .bind(language.clone().flatten())
        .bind(chosen_languages.is_some())
        .bind(chosen_languages.clone().flatten())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>([
            old_avatar.filter(|_| new_key(Slot::Avatar).is_some()),
            old_header.filter(|_| new_key(Slot::Header).is_some()),
        ])
    }
    .await;
    match saved {
        Ok(replaced) => remove_objects(&state, replaced.iter().flatten()).await,
        Err(e) => {
            remove_objects(&state, stored.iter().map(|(_, k)| k)).await;
            return Err(e.into());
        }
    }
    let profile = crate::federation::delivery::Outgoing::Profile { account_id };
    crate::federation::delivery::send(&state, profile).await;
    own_account(&state, account_id).await
}

/// Uploads each image under a new key; on a failure, removes those already stored.
async fn store_images(
    state: &AppState,
    account_id: i64,
    images: &[Image],
) -> Result<Vec<(Slot, String)>, ApiError> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let storage = state.storage.as_ref().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "an image was uploaded but no media storage is configured (FEDI_S3_BUCKET)"
        ))
    })?;
    let mut stored = Vec::new();
    for image in images {
        let key = media::key(account_id, image);
        if let Err(e) = storage
            .put(&key, image.bytes.clone(), image.kind.mime())
            .await
        {
            remove_objects(state, stored.iter().map(|(_, k)| k)).await;
            return Err(ApiError::Internal(e));
        }
        stored.push((image.slot, key));
    }
    Ok(stored)
}

/// Best effort: an object left behind costs storage, not correctness (nothing points at it).
async fn remove_objects<'a>(state: &AppState, keys: impl Iterator<Item = &'a String>) {
    let Some(storage) = &state.storage else {
        return;
    };
    for key in keys {
        if let Err(e) = storage.delete(key).await {
            warn!(error = %e, "could not remove a replaced profile image");
        }
    }
}

async fn remove_image(
    state: AppState,
    auth: Auth,
    slot: Slot,
) -> Result<Json<CredentialAccount>, ApiError> {
    auth.require("write:accounts")?;
    let account_id = auth.user()?.account_id;
    // Column names come from a closed set, so each statement stays a literal.
    let sql = match slot {
        Slot::Avatar => {
            "UPDATE accounts a SET avatar_key = NULL, updated_at = now() \
             FROM (SELECT avatar_key FROM accounts WHERE id = $1 FOR UPDATE) old \
             WHERE a.id = $1 RETURNING old.avatar_key"
        }
        Slot::Header => {
            "UPDATE accounts a SET header_key = NULL, updated_at = now() \
             FROM (SELECT header_key FROM accounts WHERE id = $1 FOR UPDATE) old \
             WHERE a.id = $1 RETURNING old.header_key"
        }
    };
    let old: Option<(Option<String>,)> = sqlx::query_as(sql)
        .bind(account_id)
        .fetch_optional(state.db.primary())
        .await?;
    if let Some((Some(key),)) = old {
        remove_objects(&state, std::iter::once(&key)).await;
    }
    own_account(&state, account_id).await
}

pub async fn delete_avatar(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<CredentialAccount>, ApiError> {
    remove_image(state, auth, Slot::Avatar).await
}

pub async fn delete_header(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<CredentialAccount>, ApiError> {
    remove_image(state, auth, Slot::Header).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_come_as_a_hash_or_an_array() {
        let want = vec![
            StoredField {
                name: "a".into(),
                value: "1".into(),
            },
            StoredField {
                name: "b".into(),
                value: "".into(),
            },
        ];
        let hash = json!({"10": {"name": "", "value": ""}, "1": {"name": "b"}, "0": {"name": "a", "value": "1"}});
        assert_eq!(parse_fields(hash).unwrap(), want);
        let array = json!([{"name": "a", "value": 1}, {"name": "b", "value": ""}]);
        assert_eq!(parse_fields(array).unwrap(), want);
        assert_eq!(parse_fields(json!("")).unwrap(), vec![]);
    }

    #[test]
    fn fields_are_bounded() {
        let five: Vec<Value> = (0..5)
            .map(|i| json!({"name": i.to_string(), "value": "v"}))
            .collect();
        assert!(parse_fields(Value::Array(five)).is_err());
        assert!(parse_fields(json!([{"name": "n".repeat(256), "value": "v"}])).is_err());
        assert!(parse_fields(json!([{"name": "n", "value": "v".repeat(256)}])).is_err());
        assert!(parse_fields(json!([{"name": "n".repeat(255), "value": "v".repeat(255)}])).is_ok());
        assert!(parse_fields(json!(["x"])).is_err());
        assert!(parse_fields(json!(7)).is_err());
    }

    #[test]
    fn languages_are_iso_codes_or_cleared() {
        assert_eq!(parse_language(None).unwrap(), None);
        assert_eq!(parse_language(Some("".into())).unwrap(), Some(None));
        assert_eq!(
            parse_language(Some("de".into())).unwrap(),
            Some(Some("de".into()))
        );
        assert!(parse_language(Some("German".into())).is_err());
    }
}
