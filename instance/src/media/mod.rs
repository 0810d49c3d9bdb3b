//! Media processing: pure functions from uploaded bytes to the files that are stored.
//!
//! Everything happens in memory. Nothing an upload contains (its name, its metadata) ever
//! becomes a path, and no temporary file is written: the class of bug behind Mastodon's
//! CVE-2023-36460 (files created where a crafted upload said) has nowhere to happen.
//!
//! - The type comes from the first bytes ([`detect`]); the client's claim is ignored.
//! - Images (JPEG, PNG, GIF, WebP) are decoded under limits (bytes, pixel count, memory) that
//!   are checked from the header before any pixel buffer exists, turned upright by their
//!   EXIF orientation, and re-encoded: the output holds pixels only, never EXIF (GPS), XMP,
//!   IPTC, ICC profiles or comments, nor anything appended to or hidden in the upload.
//!   The original is scaled to at most 3840x2160 pixels' worth and the `small` preview to
//!   640x360's (Mastodon's 8,294,400 and 230,400 pixels), keeping the aspect ratio.
//! - GIFs stay GIFs, animation included: frames are copied in their own palettes. Mastodon
//!   turns animated GIFs into `gifv` videos; that needs the worker's transcoder.
//! - Video and audio are only recognised here: the worker processes them (issue 6).

mod animation;
mod detect;
mod picture;

#[cfg(test)]
mod tests;

pub use detect::{Format, Kind, MIME_ALIASES, detect};
pub use picture::{
    ORIGINAL_MAX_PIXELS, Processed, Rendition, SMALL_MAX_PIXELS, process_image, process_thumbnail,
};

use serde_json::{Value, json};

/// What an upload may be; the API takes these from the instance's advertised limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bytes: u64,
    /// Width times height, checked before decoding.
    pub max_pixels: u64,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum MediaError {
    #[error("is not a supported image, video or audio file")]
    UnsupportedType,
    /// A known format where it is not accepted (a video as a thumbnail).
    #[error("must be a {expected} file, not {found}")]
    WrongKind {
        expected: &'static str,
        found: &'static str,
    },
    #[error("size must be less than {} MB", limit.div_ceil(1024 * 1024))]
    TooLarge { limit: u64 },
    #[error("is {width}x{height}: images of more than {limit} pixels are not supported")]
    TooManyPixels { width: u64, height: u64, limit: u64 },
    #[error("could not be read as a {format} image ({reason})")]
    Undecodable {
        format: &'static str,
        reason: String,
    },
}

/// `meta.original` / `meta.small` for an image of this size.
pub fn geometry(width: u32, height: u32) -> Value {
    json!({
        "width": width,
        "height": height,
        "size": format!("{width}x{height}"),
        "aspect": f64::from(width) / f64::from(height.max(1)),
    })
}

/// A focal point as clients send it: `"x,y"` (or `[x, y]` in JSON), each in [-1, 1], from
/// left/bottom to right/top.
pub fn parse_focus(value: &Value) -> Option<(f64, f64)> {
    let (x, y) = match value {
        Value::String(s) => {
            let (x, y) = s.split_once(',')?;
            (x.trim().parse::<f64>().ok()?, y.trim().parse::<f64>().ok()?)
        }
        Value::Array(items) if items.len() == 2 => {
            let n = |v: &Value| match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            (n(&items[0])?, n(&items[1])?)
        }
        _ => return None,
    };
    let ok = |v: f64| v.is_finite() && (-1.0..=1.0).contains(&v);
    (ok(x) && ok(y)).then_some((x, y))
}

pub fn focus_json((x, y): (f64, f64)) -> Value {
    json!({"x": x, "y": y})
}
