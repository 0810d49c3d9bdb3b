//! Profile images: the uploaded avatar and header, checked and stored in the media bucket,
//! and the default images served for accounts without one.
//!
//! The stored file is the uploaded one, as is: stripping metadata (EXIF locations), resizing
//! to Mastodon's 400x400 / 1500x500 and a still frame of animations are the media issue's
//! job, which will reprocess through the same keys.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::api::ApiError;
use crate::api::entities::account::{MISSING_AVATAR_PATH, MISSING_HEADER_PATH};
use crate::api::params::Upload;
use crate::state::AppState;

/// Mastodon's limit for avatars and headers (with libvips).
pub const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;

/// What an upload is, by its first bytes: the client's content type and file name are not
/// trusted, so a file is stored and served only as the image type it really starts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageType {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageType {
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }
}

/// Which profile image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Avatar,
    Header,
}

impl Slot {
    pub fn field(self) -> &'static str {
        match self {
            Slot::Avatar => "avatar",
            Slot::Header => "header",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Slot::Avatar => "Avatar",
            Slot::Header => "Header",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Slot::Avatar => "avatars",
            Slot::Header => "headers",
        }
    }
}

/// A checked upload, ready to store.
#[derive(Debug)]
pub struct Image {
    pub slot: Slot,
    pub kind: ImageType,
    pub bytes: axum::body::Bytes,
}

/// Checks size and type; the message names the field as Mastodon's validation errors do.
pub fn check(slot: Slot, upload: &Upload) -> Result<Image, ApiError> {
    if upload.bytes.len() > MAX_IMAGE_BYTES {
        return Err(ApiError::Validation(format!(
            "{} file size must be less than {} MB",
            slot.label(),
            MAX_IMAGE_BYTES / (1024 * 1024)
        )));
    }
    let kind = ImageType::sniff(&upload.bytes).ok_or_else(|| {
        ApiError::Validation(format!(
            "{} must be a PNG, JPEG, GIF or WebP image",
            slot.label()
        ))
    })?;
    Ok(Image {
        slot,
        kind,
        bytes: upload.bytes.clone(),
    })
}

/// `media/accounts/avatars/<account>/<random>.<ext>`: a new key per upload, so caches never
/// serve a stale image and nobody can guess a key from another.
pub fn key(account_id: i64, image: &Image) -> String {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).expect("the OS random generator works");
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "media/accounts/{}/{account_id}/{random}.{}",
        image.slot.prefix(),
        image.kind.extension()
    )
}

/// 1x1 images in Mastodon's default colours; clients scale them.
const MISSING_AVATAR: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x98, 0xbd, 0xee, 0xc4,
    0x7f, 0x00, 0x07, 0x0a, 0x03, 0x11, 0x33, 0x4b, 0xde, 0xf1, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];
const MISSING_HEADER: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x48, 0xc8, 0x6c, 0xf9,
    0x0f, 0x00, 0x04, 0xc7, 0x02, 0x4d, 0xf5, 0xe2, 0x1a, 0xb5, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

fn png(bytes: &'static [u8]) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "image/png"),
            (CACHE_CONTROL, "public, max-age=86400"),
        ],
        bytes,
    )
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(MISSING_AVATAR_PATH, get(|| async { png(MISSING_AVATAR) }))
        .route(MISSING_HEADER_PATH, get(|| async { png(MISSING_HEADER) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(bytes: &[u8]) -> Upload {
        Upload {
            field: "avatar".into(),
            file_name: Some("a.png".into()),
            // What the client claims is ignored.
            content_type: Some("image/png".into()),
            bytes: axum::body::Bytes::copy_from_slice(bytes),
        }
    }

    #[test]
    fn types_come_from_magic_bytes() {
        let cases: [(&[u8], Option<ImageType>); 8] = [
            (MISSING_AVATAR, Some(ImageType::Png)),
            (b"\xff\xd8\xff\xe0\x00\x10JFIF", Some(ImageType::Jpeg)),
            (b"GIF89a\x01\x00", Some(ImageType::Gif)),
            (b"RIFF\x10\x00\x00\x00WEBPVP8 ", Some(ImageType::Webp)),
            (b"RIFF\x10\x00\x00\x00AVI ", None),
            (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
            (
                b"{\"@context\":\"https://www.w3.org/ns/activitystreams\"}",
                None,
            ),
            (b"", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(ImageType::sniff(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn uploads_are_bounded_and_must_be_images() {
        let ok = check(Slot::Avatar, &upload(MISSING_HEADER)).unwrap();
        assert_eq!(ok.kind.mime(), "image/png");
        let key = key(42, &ok);
        assert!(key.starts_with("media/accounts/avatars/42/"), "{key}");
        assert!(key.ends_with(".png"), "{key}");

        let err = check(Slot::Header, &upload(b"<html>")).unwrap_err();
        assert!(err.to_string().contains("Header must be"), "{err}");
        let mut big = MISSING_AVATAR.to_vec();
        big.resize(MAX_IMAGE_BYTES + 1, 0);
        let err = check(Slot::Avatar, &upload(&big)).unwrap_err();
        assert!(err.to_string().contains("less than 8 MB"), "{err}");
    }
}
