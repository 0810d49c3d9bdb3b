//! GIFs, animation included, re-encoded frame by frame in their own palettes: lossless, and
//! the output holds the frames, their timing and the loop count only. Comments, XMP and
//! any other extension block, and whatever follows the trailer, are left behind.

use std::borrow::Cow;
use std::io::Cursor;
use std::num::NonZeroU64;

use gif::{ColorOutput, DecodeOptions, Encoder, Frame, MemoryLimit, Repeat};

use super::picture::{Rendition, check_pixels};
use super::{Format, Limits, MediaError};

/// Mastodon's MAX_VIDEO_FRAMES (5 minutes at 120 fps).
const MAX_FRAMES: u64 = 36_000;
/// Decoding work over all frames, in single-image pixel limits: a long animation of small
/// frames passes, thousands of full-size frames (each LZW-compressible to almost nothing)
/// do not.
const TOTAL_PIXELS_FACTOR: u64 = 8;

pub fn reencode(bytes: &[u8], limits: &Limits) -> Result<Rendition, MediaError> {
    let bad = |reason: String| MediaError::Undecodable {
        format: Format::Gif.label(),
        reason,
    };
    let decoding = |e: gif::DecodingError| bad(e.to_string());
    let encoding = |e: gif::EncodingError| bad(format!("re-encoding failed: {e}"));

    let mut options = DecodeOptions::new();
    options.set_color_output(ColorOutput::Indexed);
    options.set_memory_limit(MemoryLimit::Bytes(
        NonZeroU64::new(limits.max_pixels.max(1)).expect("at least 1"),
    ));
    // Frames must lie within the canvas: the canvas is what the pixel limit was checked on.
    options.check_frame_consistency(true);
    let mut decoder = options.read_info(Cursor::new(bytes)).map_err(decoding)?;
    let (width, height) = (decoder.width(), decoder.height());
    check_pixels(Format::Gif, width.into(), height.into(), limits)?;
    let global_palette = decoder.global_palette().map(<[u8]>::to_vec);
    let budget = limits.max_pixels.saturating_mul(TOTAL_PIXELS_FACTOR);

    let mut encoder: Option<Encoder<Vec<u8>>> = None;
    let (mut frames, mut pixels) = (0u64, 0u64);
    let mut buffer = Vec::new();
    while let Some(info) = decoder.next_frame_info().map_err(decoding)? {
        frames += 1;
        pixels += u64::from(info.width) * u64::from(info.height);
        if frames > MAX_FRAMES || pixels > budget {
            return Err(bad(format!(
                "the animation is too long: at most {MAX_FRAMES} frames and {budget} pixels \
                 over all frames"
            )));
        }
        if u32::from(info.left) + u32::from(info.width) > u32::from(width)
            || u32::from(info.top) + u32::from(info.height) > u32::from(height)
        {
            return Err(bad("a frame lies outside the image".into()));
        }
        let mut frame = Frame {
            delay: info.delay,
            dispose: info.dispose,
            transparent: info.transparent,
            left: info.left,
            top: info.top,
            width: info.width,
            height: info.height,
            palette: info.palette.clone(),
            // The decoder de-interlaces; the frame is written in plain row order.
            interlaced: false,
            needs_user_input: false,
            ..Frame::default()
        };
        buffer.resize(decoder.buffer_size(), 0);
        decoder.read_into_buffer(&mut buffer).map_err(decoding)?;
        if encoder.is_none() {
            // The loop count is known once the first frame's header has been read.
            let mut e = Encoder::new(
                Vec::new(),
                width,
                height,
                global_palette.as_deref().unwrap_or(&[]),
            )
            .map_err(encoding)?;
            let repeat = decoder.repeat();
            if repeat != Repeat::Finite(0) {
                e.set_repeat(repeat).map_err(encoding)?;
            }
            encoder = Some(e);
        }
        frame.buffer = Cow::Borrowed(&buffer);
        encoder
            .as_mut()
            .expect("created above")
            .write_frame(&frame)
            .map_err(encoding)?;
    }
    let Some(encoder) = encoder else {
        return Err(bad("it has no frames".into()));
    };
    Ok(Rendition {
        bytes: encoder.into_inner().map_err(encoding)?,
        format: Format::Gif,
        width: width.into(),
        height: height.into(),
    })
}
