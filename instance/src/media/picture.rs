//! Still images: decode under limits, turn upright, scale, re-encode without metadata, and
//! the blurhash of the preview.

use std::borrow::Cow;
use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageError, ImageFormat, ImageReader};
use serde_json::Value;

use super::{Format, Kind, Limits, MediaError, animation, detect};

/// Mastodon's `original` style: 3840x2160 pixels' worth.
pub const ORIGINAL_MAX_PIXELS: u64 = 8_294_400;
/// Mastodon's `small` style (and thumbnails): 640x360 pixels' worth.
pub const SMALL_MAX_PIXELS: u64 = 230_400;
/// Mastodon's `-quality 90`.
const JPEG_QUALITY: u8 = 90;
/// Mastodon's x_comp and y_comp.
const BLURHASH_COMPONENTS: u32 = 4;
/// 4x4 components describe only the coarsest shapes: a 100x100 rendition yields the same
/// hash as the full preview for a fraction of the work.
const BLURHASH_SOURCE_PIXELS: u64 = 10_000;
/// The decoder's allocation budget per pixel: 16-bit RGBA, the widest these formats decode
/// to, plus room for the decoders' own buffers.
const DECODE_BYTES_PER_PIXEL: u64 = 8;
const DECODE_SLACK_BYTES: u64 = 32 * 1024 * 1024;

/// One stored file.
#[derive(Debug)]
pub struct Rendition {
    pub bytes: Vec<u8>,
    pub format: Format,
    pub width: u32,
    pub height: u32,
}

impl Rendition {
    /// `meta.original` / `meta.small`.
    pub fn geometry(&self) -> Value {
        super::geometry(self.width, self.height)
    }
}

#[derive(Debug)]
pub struct Processed {
    pub original: Rendition,
    pub small: Rendition,
    pub blurhash: String,
}

/// An uploaded image, ready to store.
pub fn process_image(bytes: &[u8], limits: &Limits) -> Result<Processed, MediaError> {
    let format = accept(bytes, limits)?;
    if format == Format::Gif {
        let original = animation::reencode(bytes, limits)?;
        let still = decode(bytes, format, limits)?;
        let (small, blurhash) = preview(&still, Format::Png)?;
        return Ok(Processed {
            original,
            small,
            blurhash,
        });
    }
    let decoded = decode(bytes, format, limits)?;
    let output = output_format(format, &decoded);
    let original_image = scaled(&decoded, ORIGINAL_MAX_PIXELS);
    let original = encode(&original_image, output)?;
    let small_image = scaled(&original_image, SMALL_MAX_PIXELS);
    let small = if matches!(small_image, Cow::Borrowed(_)) {
        // Mastodon stores the small style even when nothing needs scaling; the same bytes
        // serve for both.
        Rendition {
            bytes: original.bytes.clone(),
            format: original.format,
            width: original.width,
            height: original.height,
        }
    } else {
        encode(&small_image, output)?
    };
    let blurhash = blurhash(&small_image)?;
    Ok(Processed {
        original,
        small,
        blurhash,
    })
}

/// A custom preview (Mastodon's `thumbnail`, for video and audio): an image scaled to the
/// `small` size, and its blurhash. Animated GIFs give their first frame.
pub fn process_thumbnail(bytes: &[u8], limits: &Limits) -> Result<(Rendition, String), MediaError> {
    let format = accept(bytes, limits)?;
    let decoded = decode(bytes, format, limits)?;
    let output = match format {
        Format::Gif => Format::Png,
        other => output_format(other, &decoded),
    };
    preview(&decoded, output)
}

/// An image within the limits, or why not.
fn accept(bytes: &[u8], limits: &Limits) -> Result<Format, MediaError> {
    let format = detect(bytes).ok_or(MediaError::UnsupportedType)?;
    if format.kind() != Kind::Image {
        return Err(MediaError::WrongKind {
            expected: "JPEG, PNG, GIF or WebP image",
            found: format.label(),
        });
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(MediaError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    Ok(format)
}

pub(super) fn check_pixels(
    format: Format,
    width: u64,
    height: u64,
    limits: &Limits,
) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::Undecodable {
            format: format.label(),
            reason: "it has no pixels".into(),
        });
    }
    if width.saturating_mul(height) > limits.max_pixels {
        return Err(MediaError::TooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    Ok(())
}

/// Decodes, upright. The header is read first and the size checked before any pixel buffer
/// is allocated; the decoder's own allocations are capped too (compressed metadata chunks
/// can be bombs as well).
fn decode(bytes: &[u8], format: Format, limits: &Limits) -> Result<DynamicImage, MediaError> {
    let undecodable = |e: ImageError| MediaError::Undecodable {
        format: format.label(),
        reason: match e {
            ImageError::Limits(_) => "it needs more memory than allowed".into(),
            e => e.to_string(),
        },
    };
    let image_format = match format {
        Format::Jpeg => ImageFormat::Jpeg,
        Format::Png => ImageFormat::Png,
        Format::Gif => ImageFormat::Gif,
        Format::Webp => ImageFormat::WebP,
        _ => unreachable!("only images are decoded"),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    let mut decode_limits = image::Limits::default();
    decode_limits.max_alloc = Some(
        limits
            .max_pixels
            .saturating_mul(DECODE_BYTES_PER_PIXEL)
            .saturating_add(DECODE_SLACK_BYTES),
    );
    reader.limits(decode_limits);
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let (width, height) = decoder.dimensions();
    check_pixels(format, u64::from(width), u64::from(height), limits)?;
    // A broken EXIF block costs the orientation, not the image.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    image.apply_orientation(orientation);
    Ok(eight_bit(image))
}

/// Browsers show 8 bits per channel; 16-bit PNGs would only double the stored size.
fn eight_bit(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => image,
        DynamicImage::ImageLuma16(_) => DynamicImage::ImageLuma8(image.to_luma8()),
        DynamicImage::ImageLumaA16(_) => DynamicImage::ImageLumaA8(image.to_luma_alpha8()),
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    }
}

/// JPEG and PNG keep their format. WebP becomes JPEG, or lossless WebP when it has
/// transparency: the pure-Rust encoder writes lossless WebP only, which would multiply the
/// size of a photo.
fn output_format(input: Format, image: &DynamicImage) -> Format {
    match input {
        Format::Webp if image.color().has_alpha() => Format::Webp,
        Format::Webp => Format::Jpeg,
        other => other,
    }
}

/// The largest size within `max_pixels` with the same aspect ratio (never upscaled).
pub(super) fn fit(width: u32, height: u32, max_pixels: u64) -> (u32, u32) {
    let pixels = u64::from(width) * u64::from(height);
    if pixels <= max_pixels {
        return (width, height);
    }
    let scale = (max_pixels as f64 / pixels as f64).sqrt();
    let w = ((f64::from(width) * scale).floor() as u32).max(1);
    let h = ((f64::from(height) * scale).floor() as u32).max(1);
    // A side clamped to 1 pixel (extreme aspect ratios) makes the other one give way.
    let w = w.min((max_pixels / u64::from(h)).try_into().unwrap_or(u32::MAX));
    let h = h.min((max_pixels / u64::from(w)).try_into().unwrap_or(u32::MAX));
    (w, h)
}

fn scaled(image: &DynamicImage, max_pixels: u64) -> Cow<'_, DynamicImage> {
    let (w, h) = fit(image.width(), image.height(), max_pixels);
    if (w, h) == (image.width(), image.height()) {
        Cow::Borrowed(image)
    } else {
        // Area averaging: sharp enough for downscaling, and far cheaper than Lanczos.
        Cow::Owned(image.thumbnail_exact(w, h))
    }
}

fn preview(image: &DynamicImage, format: Format) -> Result<(Rendition, String), MediaError> {
    let small = scaled(image, SMALL_MAX_PIXELS);
    let rendition = encode(&small, format)?;
    Ok((rendition, blurhash(&small)?))
}

/// Encoders write pixels and the format's mandatory headers only: no EXIF, XMP, ICC or
/// text is ever handed to them.
fn encode(image: &DynamicImage, format: Format) -> Result<Rendition, MediaError> {
    let failed = |e: ImageError| MediaError::Undecodable {
        format: format.label(),
        reason: format!("re-encoding failed: {e}"),
    };
    let mut bytes = Vec::new();
    match format {
        Format::Jpeg => {
            let encoder = JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY);
            match image {
                DynamicImage::ImageLuma8(gray) => gray.write_with_encoder(encoder),
                other => other.to_rgb8().write_with_encoder(encoder),
            }
            .map_err(failed)?;
        }
        Format::Png => image
            .write_with_encoder(PngEncoder::new(&mut bytes))
            .map_err(failed)?,
        Format::Webp => {
            let rgba = image.to_rgba8();
            WebPEncoder::new_lossless(&mut bytes)
                .write_image(
                    rgba.as_raw(),
                    rgba.width(),
                    rgba.height(),
                    image::ExtendedColorType::Rgba8,
                )
                .map_err(failed)?;
        }
        _ => unreachable!("only images are encoded"),
    }
    Ok(Rendition {
        bytes,
        format,
        width: image.width(),
        height: image.height(),
    })
}

/// Transparent areas count as white, as Mastodon's `-flatten` makes them.
fn blurhash(image: &DynamicImage) -> Result<String, MediaError> {
    let source = scaled(image, BLURHASH_SOURCE_PIXELS);
    let mut rgba = source.to_rgba8();
    for pixel in rgba.pixels_mut() {
        let alpha = u16::from(pixel[3]);
        for c in 0..3 {
            pixel[c] = ((u16::from(pixel[c]) * alpha + 255 * (255 - alpha)) / 255) as u8;
        }
        pixel[3] = 255;
    }
    blurhash::encode(
        BLURHASH_COMPONENTS,
        BLURHASH_COMPONENTS,
        rgba.width(),
        rgba.height(),
        rgba.as_raw(),
    )
    .map_err(|e| MediaError::Undecodable {
        format: "preview",
        reason: format!("blurhash: {e}"),
    })
}
