//! Where attachments live in the media bucket, and putting them there all or nothing.
//!
//! `media/media_attachments/files/<id partition>/<random>/original.<ext>` (and `small.<ext>`
//! beside it), thumbnails under `.../thumbnails/...`. The id partition (Mastodon's, 3 digits
//! a level) keeps listings shallow; the random level makes every upload's URL unguessable
//! even knowing its id (attachments of private posts are public objects), and new on every
//! write, so that objects never change under caches that keep them forever.

use std::sync::Arc;

use axum::body::Bytes;
use tracing::warn;

use crate::api::ApiError;
use crate::media::Format;
use crate::storage::Storage;

pub struct Object {
    pub key: String,
    pub bytes: Bytes,
    pub content_type: &'static str,
}

/// `123456789012345678` -> `123/456/789/012/345/678`, zero-padded to 18 digits.
pub fn partition(id: i64) -> String {
    let digits = format!("{id:018}");
    let groups: Vec<&str> = digits
        .as_bytes()
        .chunks(3)
        .map(|c| std::str::from_utf8(c).expect("digits"))
        .collect();
    groups.join("/")
}

fn random() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new folder for one upload of the file of attachment `id`.
pub fn file_dir(id: i64) -> String {
    format!(
        "media/media_attachments/files/{}/{}",
        partition(id),
        random()
    )
}

/// A new folder for one thumbnail of attachment `id`.
pub fn thumbnail_dir(id: i64) -> String {
    format!(
        "media/media_attachments/thumbnails/{}/{}",
        partition(id),
        random()
    )
}

pub fn object(dir: &str, style: &str, format: Format, bytes: impl Into<Bytes>) -> Object {
    Object {
        key: format!("{dir}/{style}.{}", format.extension()),
        bytes: bytes.into(),
        content_type: format.mime(),
    }
}

pub fn storage(state: &crate::state::AppState) -> Result<Arc<Storage>, ApiError> {
    state.storage.clone().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "media were uploaded but no media storage is configured (FEDI_S3_BUCKET)"
        ))
    })
}

/// Stores every object, or none: on a failure, those already stored are removed.
pub async fn put_all(storage: &Storage, objects: &[Object]) -> Result<(), ApiError> {
    for (i, object) in objects.iter().enumerate() {
        if let Err(e) = storage
            .put(&object.key, object.bytes.clone(), object.content_type)
            .await
        {
            remove(
                storage,
                objects[..i].iter().map(|o| o.key.clone()).collect(),
            )
            .await;
            return Err(ApiError::Internal(e));
        }
    }
    Ok(())
}

/// Best effort: an object left behind costs storage, not correctness (nothing points at it).
/// (Owned keys: a borrowing iterator held across the awaits would make handlers' futures
/// lifetime-generic, which axum cannot take.)
pub async fn remove(storage: &Storage, keys: Vec<String>) {
    for key in keys {
        if let Err(e) = storage.delete(&key).await {
            warn!(error = %e, "could not remove a media object");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_partitioned_by_id_and_unguessable() {
        assert_eq!(partition(1), "000/000/000/000/000/001");
        assert_eq!(
            partition(115_063_214_080_000_123),
            "115/063/214/080/000/123"
        );
        let a = file_dir(42);
        let b = file_dir(42);
        assert_ne!(a, b);
        assert!(
            a.starts_with("media/media_attachments/files/000/000/000/000/000/042/"),
            "{a}"
        );
        assert_eq!(a.rsplit('/').next().unwrap().len(), 32);
        let o = object(&a, "small", Format::Png, Vec::new());
        assert_eq!(o.key, format!("{a}/small.png"));
        assert_eq!(o.content_type, "image/png");
        assert!(thumbnail_dir(42).starts_with("media/media_attachments/thumbnails/000/"));
    }
}
