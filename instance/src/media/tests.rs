//! Table-driven tests of media processing on images built here, byte by byte where the
//! point is what a hostile file can hold (metadata blocks, lying headers, appended payloads).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ImageEncoder, RgbImage, RgbaImage};
use serde_json::json;

use super::*;

/// The instance's advertised limits (api::instance::limits), repeated: this module does not
/// depend on the API.
const LIMITS: Limits = Limits {
    max_bytes: 16 * 1024 * 1024,
    max_pixels: 33_177_600,
};

// ---------------------------------------------------------------------------------------
// The largest single allocation each thread asks for, so that a test can show a bomb was
// refused before its pixel buffer was even requested (a failed request counts too).

struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

// ---------------------------------------------------------------------------------------
// Fixtures.

const RED: [u8; 3] = [230, 20, 20];
const BLUE: [u8; 3] = [20, 20, 230];

/// Left half red, right half blue: after a quarter turn, which half is where shows the turn.
fn halves(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, _| {
        image::Rgb(if x < width / 2 { RED } else { BLUE })
    })
}

fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 95)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

fn png(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

fn webp_rgba(image: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgba8,
        )
        .unwrap();
    out
}

/// A GIF of `frames` frames alternating red and blue, looping forever, with a comment and
/// an XMP packet in extension blocks.
fn gif(width: u16, height: u16, frames: usize) -> Vec<u8> {
    let palette = [RED, BLUE].concat();
    let mut out = Vec::new();
    {
        let mut e = gif::Encoder::new(&mut out, width, height, &palette).unwrap();
        e.set_repeat(gif::Repeat::Infinite).unwrap();
        e.write_raw_extension(gif::AnyExtension(0xfe), &[b"SECRET-COMMENT"])
            .unwrap();
        e.write_raw_extension(
            gif::AnyExtension(0xff),
            &[
                b"XMP DataXMP",
                b"<x:xmpmeta>SECRET-XMP http://ns.adobe.com/xap/1.0/</x:xmpmeta>",
            ],
        )
        .unwrap();
        for i in 0..frames {
            let frame = gif::Frame {
                width,
                height,
                delay: 7 + i as u16,
                buffer: vec![(i % 2) as u8; usize::from(width) * usize::from(height)].into(),
                ..gif::Frame::default()
            };
            e.write_frame(&frame).unwrap();
        }
    }
    out
}

/// A big-endian EXIF (TIFF) block: orientation, a description and a GPS position.
fn exif(orientation: u16) -> Vec<u8> {
    let description = b"SECRET-DESCRIPTION\0\0".as_slice();
    let ifd0 = 8u32;
    let ifd0_len = 2 + 3 * 12 + 4;
    let description_at = ifd0 + ifd0_len;
    let gps_at = description_at + description.len() as u32;
    let gps_len = 2 + 2 * 12 + 4;
    let rationals_at = gps_at + gps_len;

    let mut t = b"MM\0\x2a".to_vec();
    t.extend(ifd0.to_be_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        t.extend(tag.to_be_bytes());
        t.extend(kind.to_be_bytes());
        t.extend(count.to_be_bytes());
        t.extend(value);
    };
    t.extend(3u16.to_be_bytes());
    entry(
        &mut t,
        0x010e,
        2,
        description.len() as u32,
        description_at.to_be_bytes(),
    );
    let o = orientation.to_be_bytes();
    entry(&mut t, 0x0112, 3, 1, [o[0], o[1], 0, 0]);
    entry(&mut t, 0x8825, 4, 1, gps_at.to_be_bytes());
    t.extend(0u32.to_be_bytes());
    t.extend(description);
    t.extend(2u16.to_be_bytes());
    entry(&mut t, 0x0001, 2, 2, *b"N\0\0\0");
    entry(&mut t, 0x0002, 5, 3, rationals_at.to_be_bytes());
    t.extend(0u32.to_be_bytes());
    for (n, d) in [(48u32, 1u32), (51, 1), (2417, 100)] {
        t.extend(n.to_be_bytes());
        t.extend(d.to_be_bytes());
    }
    t
}

const XMP: &[u8] = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>SECRET-XMP</x:xmpmeta>";
const ICC: &[u8] = b"SECRET-ICC-PROFILE-BYTES";

fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0xff, marker];
    s.extend(((payload.len() + 2) as u16).to_be_bytes());
    s.extend(payload);
    s
}

/// EXIF, XMP, an ICC profile and a comment, right after SOI.
fn with_jpeg_metadata(jpeg: &[u8], exif: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend(jpeg_segment(0xe1, &[b"Exif\0\0".as_slice(), exif].concat()));
    out.extend(jpeg_segment(
        0xe1,
        &[b"http://ns.adobe.com/xap/1.0/\0".as_slice(), XMP].concat(),
    ));
    out.extend(jpeg_segment(
        0xe2,
        &[b"ICC_PROFILE\0\x01\x01".as_slice(), ICC].concat(),
    ));
    out.extend(jpeg_segment(0xfe, b"SECRET-COMMENT"));
    out.extend(&jpeg[2..]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend(kind);
    c.extend(data);
    c.extend(crc32(&[kind.as_slice(), data].concat()).to_be_bytes());
    c
}

/// eXIf, a text comment and XMP, after IHDR.
fn with_png_metadata(png: &[u8], exif: &[u8]) -> Vec<u8> {
    let ihdr_end = 8 + 4 + 4 + 13 + 4;
    let mut out = png[..ihdr_end].to_vec();
    out.extend(png_chunk(b"eXIf", exif));
    out.extend(png_chunk(b"tEXt", b"Comment\0SECRET-COMMENT"));
    out.extend(png_chunk(
        b"iTXt",
        &[b"XML:com.adobe.xmp\0\0\0\0\0".as_slice(), XMP].concat(),
    ));
    out.extend(&png[ihdr_end..]);
    out
}

fn riff_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = kind.to_vec();
    c.extend((data.len() as u32).to_le_bytes());
    c.extend(data);
    if data.len() % 2 == 1 {
        c.push(0);
    }
    c
}

/// An extended WebP (VP8X) around a lossless bitstream, with ICC, EXIF and XMP chunks.
fn with_webp_metadata(webp: &[u8], width: u32, height: u32, alpha: bool, exif: &[u8]) -> Vec<u8> {
    assert_eq!(
        &webp[12..16],
        b"VP8L",
        "the encoder writes a simple lossless file"
    );
    let vp8l = &webp[12..];
    let mut flags = 0x20 | 0x08 | 0x04; // ICC, EXIF, XMP
    if alpha {
        flags |= 0x10;
    }
    let mut vp8x = vec![flags, 0, 0, 0];
    vp8x.extend(&(width - 1).to_le_bytes()[..3]);
    vp8x.extend(&(height - 1).to_le_bytes()[..3]);
    let mut body = b"WEBP".to_vec();
    body.extend(riff_chunk(b"VP8X", &vp8x));
    body.extend(riff_chunk(b"ICCP", ICC));
    body.extend(vp8l);
    body.extend(riff_chunk(b"EXIF", exif));
    body.extend(riff_chunk(b"XMP ", XMP));
    let mut out = b"RIFF".to_vec();
    out.extend((body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Nothing of what metadata blocks held, nor the blocks themselves, is in `bytes`.
#[track_caller]
fn assert_no_metadata(bytes: &[u8], what: &str) {
    for needle in [
        b"SECRET".as_slice(),
        b"Exif",
        b"eXIf",
        b"EXIF",
        b"http://ns.adobe.com/xap",
        b"ICC_PROFILE",
        b"ICCP",
        b"iCCP",
        b"tEXt",
        b"iTXt",
        b"zTXt",
        b"XMP ",
        b"XMP Data",
        // The GPS latitude's rationals.
        b"\0\0\0\x30\0\0\0\x01\0\0\0\x33\0\0\0\x01",
    ] {
        assert!(
            !contains(bytes, needle),
            "{what}: {:?} survived",
            String::from_utf8_lossy(needle)
        );
    }
    if bytes.starts_with(&[0xff, 0xd8]) {
        // In entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so any
        // APPn (EXIF, XMP, ICC, IPTC) or COM marker would be a real segment.
        for marker in [0xe1, 0xe2, 0xed, 0xfe] {
            assert!(
                !contains(bytes, &[0xff, marker]),
                "{what}: a segment 0xff{marker:02x} survived"
            );
        }
    }
}

fn rgb_at(bytes: &[u8], x: u32, y: u32) -> [u8; 3] {
    let image = image::load_from_memory(bytes).unwrap().to_rgb8();
    image.get_pixel(x, y).0
}

#[track_caller]
fn assert_near(got: [u8; 3], want: [u8; 3], what: &str) {
    let close = got
        .iter()
        .zip(want)
        .all(|(g, w)| (i16::from(*g) - i16::from(w)).abs() < 40);
    assert!(close, "{what}: {got:?} is not close to {want:?}");
}

// ---------------------------------------------------------------------------------------

/// A name, the input, the output format and its size.
type FormatCase = (&'static str, Vec<u8>, Format, (u32, u32));
type Check = Box<dyn Fn(&MediaError) -> bool>;
/// The size a bomb claims, when the refusal is expected to name it.
type Dimensions = Option<(u64, u64)>;

#[test]
fn each_format_decodes_upright_and_loses_all_metadata() {
    // 40x20, left red, right blue, tagged "rotate 90° clockwise" (EXIF orientation 6):
    // upright it is 20x40, red on top.
    let image = halves(40, 20);
    let rgba = RgbaImage::from_fn(40, 20, |x, _| {
        let [r, g, b] = if x < 20 { RED } else { BLUE };
        image::Rgba([r, g, b, if x < 10 { 128 } else { 255 }])
    });
    let rgb_as_rgba = RgbaImage::from_fn(40, 20, |x, y| {
        let [r, g, b] = image.get_pixel(x, y).0;
        image::Rgba([r, g, b, 255])
    });
    let cases: Vec<FormatCase> = vec![
        (
            "jpeg",
            with_jpeg_metadata(&jpeg(&image), &exif(6)),
            Format::Jpeg,
            (20, 40),
        ),
        (
            "png",
            with_png_metadata(&png(&image), &exif(6)),
            Format::Png,
            (20, 40),
        ),
        (
            "opaque webp becomes jpeg",
            with_webp_metadata(&webp_rgba(&rgb_as_rgba), 40, 20, false, &exif(6)),
            Format::Jpeg,
            (20, 40),
        ),
        (
            "transparent webp stays webp",
            with_webp_metadata(&webp_rgba(&rgba), 40, 20, true, &exif(6)),
            Format::Webp,
            (20, 40),
        ),
        (
            "gif (no orientation)",
            gif(40, 20, 1),
            Format::Gif,
            (40, 20),
        ),
    ];
    for (name, input, want_format, (w, h)) in cases {
        assert!(
            contains(&input, b"SECRET"),
            "{name}: the fixture has metadata"
        );
        let out = process_image(&input, &LIMITS).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.original.format, want_format, "{name}");
        assert_eq!((out.original.width, out.original.height), (w, h), "{name}");
        assert_eq!(detect(&out.original.bytes), Some(want_format), "{name}");
        assert_no_metadata(&out.original.bytes, name);
        assert_no_metadata(&out.small.bytes, name);
        let decoded = image::load_from_memory(&out.original.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (w, h), "{name}");
        if (w, h) == (20, 40) {
            assert_near(rgb_at(&out.original.bytes, 10, 5), RED, name);
            assert_near(rgb_at(&out.original.bytes, 10, 35), BLUE, name);
        } else {
            assert_near(rgb_at(&out.original.bytes, 5, 10), RED, name);
        }
        // Small enough already: the preview is the same picture.
        assert_eq!((out.small.width, out.small.height), (w, h), "{name}");
        assert_eq!(out.blurhash.len(), 36, "{name}: 4x4 components");
    }
}

#[test]
fn every_exif_orientation_is_applied() {
    // A 3x2 image with a distinct colour at its stored top-left corner; where that corner
    // ends up after each of the eight orientations.
    let marked = RgbImage::from_fn(30, 20, |x, y| {
        image::Rgb(if x < 10 && y < 10 { RED } else { BLUE })
    });
    let cases = [
        (1, (30, 20), (5, 5)),
        (2, (30, 20), (25, 5)),
        (3, (30, 20), (25, 15)),
        (4, (30, 20), (5, 15)),
        (5, (20, 30), (5, 5)),
        (6, (20, 30), (15, 5)),
        (7, (20, 30), (15, 25)),
        (8, (20, 30), (5, 25)),
    ];
    for (orientation, (w, h), (x, y)) in cases {
        let input = with_jpeg_metadata(&jpeg(&marked), &exif(orientation));
        let out = process_image(&input, &LIMITS).unwrap();
        let what = format!("orientation {orientation}");
        assert_eq!((out.original.width, out.original.height), (w, h), "{what}");
        assert_near(rgb_at(&out.original.bytes, x, y), RED, &what);
    }
}

#[test]
fn large_images_get_a_small_preview_within_mastodons_pixel_counts() {
    let cases = [
        ((40, 20), (40, 20)),
        ((640, 360), (640, 360)),
        ((1000, 600), (619, 371)),
        ((300, 2000), (185, 1239)),
    ];
    for ((w, h), small) in cases {
        let out = process_image(&png(&halves(w, h)), &LIMITS).unwrap();
        assert_eq!((out.original.width, out.original.height), (w, h));
        assert_eq!((out.small.width, out.small.height), small, "{w}x{h}");
        assert!(u64::from(small.0) * u64::from(small.1) <= SMALL_MAX_PIXELS);
        let decoded = image::load_from_memory(&out.small.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), small);
        assert_eq!(
            out.small.geometry(),
            json!({
                "width": small.0, "height": small.1,
                "size": format!("{}x{}", small.0, small.1),
                "aspect": f64::from(small.0) / f64::from(small.1),
            })
        );
    }
}

#[test]
fn scaling_keeps_the_aspect_ratio_within_the_pixel_count() {
    let cases = [
        ((3840, 2160), ORIGINAL_MAX_PIXELS, (3840, 2160)),
        ((7680, 4320), ORIGINAL_MAX_PIXELS, (3840, 2160)),
        ((4000, 3000), ORIGINAL_MAX_PIXELS, (3325, 2494)),
        ((4000, 3000), SMALL_MAX_PIXELS, (554, 415)),
        ((33_177_600, 1), SMALL_MAX_PIXELS, (230_400, 1)),
        ((1, 1), SMALL_MAX_PIXELS, (1, 1)),
    ];
    for ((w, h), max, want) in cases {
        let got = picture::fit(w, h, max);
        assert_eq!(got, want, "{w}x{h} into {max}");
        assert!(u64::from(got.0) * u64::from(got.1) <= max);
    }
}

#[test]
fn animated_gifs_keep_their_frames_timing_and_loop() {
    let input = gif(30, 20, 3);
    let out = process_image(&input, &LIMITS).unwrap();
    assert_eq!(out.original.format, Format::Gif);
    assert_eq!(out.small.format, Format::Png, "the preview is a still");
    assert_no_metadata(&out.original.bytes, "animated gif");

    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options.read_info(Cursor::new(&out.original.bytes)).unwrap();
    let mut delays = Vec::new();
    let mut firsts = Vec::new();
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        delays.push(frame.delay);
        firsts.push(frame.buffer[0]);
    }
    assert_eq!(delays, [7, 8, 9]);
    assert_eq!(firsts, [0, 1, 0], "the frames' own pixels, losslessly");
    assert_eq!(decoder.repeat(), gif::Repeat::Infinite);
}

#[test]
fn polyglots_and_garbage_are_refused_or_neutralised() {
    let mut png_zip = png(&halves(8, 8));
    png_zip.extend(b"PK\x03\x04\x14\x00\x00\x00SECRET-ZIP-PAYLOAD<script>alert(1)</script>");
    let mut jpeg_html = jpeg(&halves(16, 16));
    // A COM segment carrying a page: a classic JPEG/HTML polyglot.
    jpeg_html.splice(
        2..2,
        jpeg_segment(0xfe, b"<html><script>alert('SECRET')</script></html>"),
    );
    let mut gif_js = gif(4, 4, 1);
    gif_js.extend(b";alert('SECRET')//");

    // Accepted: decodable images; what they carried beside the pixels is gone.
    for (name, input) in [
        ("png + zip", &png_zip),
        ("jpeg + html", &jpeg_html),
        ("gif + js", &gif_js),
    ] {
        let out = process_image(input, &LIMITS).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_no_metadata(&out.original.bytes, name);
        for needle in [b"PK\x03\x04".as_slice(), b"<script", b"alert"] {
            assert!(!contains(&out.original.bytes, needle), "{name}");
            assert!(!contains(&out.small.bytes, needle), "{name}");
        }
    }

    // Refused: not an image at all, or an image's magic bytes in front of something else.
    let undecodable = |format| move |e: &MediaError| matches!(e, MediaError::Undecodable { format: f, .. } if *f == format);
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "pdf",
            b"%PDF-1.7\n1 0 obj<<>>endobj".to_vec(),
            Box::new(|e| *e == MediaError::UnsupportedType),
        ),
        (
            "zip",
            b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec(),
            Box::new(|e| *e == MediaError::UnsupportedType),
        ),
        (
            "svg",
            b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>".to_vec(),
            Box::new(|e| *e == MediaError::UnsupportedType),
        ),
        (
            "text named .png",
            b"just some text, really".to_vec(),
            Box::new(|e| *e == MediaError::UnsupportedType),
        ),
        (
            "GIF header then JavaScript",
            b"GIF89a=1;alert(document.cookie)//".to_vec(),
            // Its "screen size" is whatever the script's first bytes read as.
            Box::new(|e| {
                matches!(
                    e,
                    MediaError::TooManyPixels { .. } | MediaError::Undecodable { .. }
                )
            }),
        ),
        (
            "GIF header, 1x1, then JavaScript",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;alert(1)//".to_vec(),
            Box::new(undecodable("GIF")),
        ),
        (
            "JPEG magic then HTML",
            b"\xff\xd8\xff<html><body>hi</body></html>".to_vec(),
            Box::new(undecodable("JPEG")),
        ),
        (
            "PNG signature then garbage",
            b"\x89PNG\r\n\x1a\nnot a chunk at all".to_vec(),
            Box::new(undecodable("PNG")),
        ),
        (
            "truncated PNG",
            png(&halves(64, 64))[..60].to_vec(),
            Box::new(undecodable("PNG")),
        ),
        (
            "RIFF WEBP with nothing inside",
            b"RIFF\x04\x00\x00\x00WEBP".to_vec(),
            Box::new(undecodable("WebP")),
        ),
        (
            "a video is no image",
            b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom".to_vec(),
            Box::new(|e| matches!(e, MediaError::WrongKind { found: "MP4", .. })),
        ),
    ];
    for (name, input, check) in cases {
        let err = process_image(&input, &LIMITS).expect_err(name);
        assert!(check(&err), "{name}: {err:?}");
        let err = process_thumbnail(&input, &LIMITS).expect_err(name);
        assert!(check(&err), "{name} as a thumbnail: {err:?}");
    }
}

/// A JPEG whose frame header claims `width`x`height`, tables and all otherwise valid.
fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = jpeg(&halves(8, 8));
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xff, 0xc0])
        .expect("a baseline frame header");
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}

/// A PNG whose header claims `width`x`height`, followed by a few bytes of data.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend(png_chunk(b"IHDR", &ihdr));
    bytes.extend(png_chunk(
        b"IDAT",
        b"\x78\x9c\x63\x60\x00\x00\x00\x02\x00\x01",
    ));
    bytes.extend(png_chunk(b"IEND", b""));
    bytes
}

/// A GIF whose screen and frame claim 65535x65535.
fn gif_claiming_maximum() -> Vec<u8> {
    let mut bytes = gif(2, 2, 1);
    bytes[6..10].copy_from_slice(&[0xff; 4]);
    let descriptor = bytes.iter().position(|&b| b == 0x2c).unwrap();
    bytes[descriptor + 5..descriptor + 9].copy_from_slice(&[0xff; 4]);
    bytes
}

/// A lossless WebP whose bitstream claims 16384x16384.
fn webp_claiming_maximum() -> Vec<u8> {
    let mut bytes = webp_rgba(&RgbaImage::new(2, 2));
    assert_eq!(&bytes[12..16], b"VP8L");
    let header = 21;
    let old = u32::from_le_bytes(bytes[header..header + 4].try_into().unwrap());
    let new = (old & !0x0fff_ffff) | 16383 | (16383 << 14);
    bytes[header..header + 4].copy_from_slice(&new.to_le_bytes());
    bytes
}

#[test]
fn decompression_bombs_are_refused_from_their_headers() {
    // The measure works: a real image's pixel buffer shows up.
    let real = png(&halves(1000, 600));
    LARGEST.with(|l| l.set(0));
    process_image(&real, &LIMITS).unwrap();
    assert!(LARGEST.with(Cell::get) >= 1000 * 600 * 3);

    let cases: Vec<(&str, Vec<u8>, Dimensions)> = vec![
        (
            "png 100000x100000",
            png_claiming(100_000, 100_000),
            Some((100_000, 100_000)),
        ),
        (
            "png 8000x8000",
            png_claiming(8000, 8000),
            Some((8000, 8000)),
        ),
        (
            "png 1x40000000",
            png_claiming(1, 40_000_000),
            Some((1, 40_000_000)),
        ),
        ("png 0x0", png_claiming(0, 0), None),
        ("jpeg 65000x65000", jpeg_claiming(65000, 65000), None),
        (
            "gif 65535x65535",
            gif_claiming_maximum(),
            Some((65535, 65535)),
        ),
        ("webp 16384x16384", webp_claiming_maximum(), None),
    ];
    for (name, input, dims) in cases {
        for thumbnail in [false, true] {
            LARGEST.with(|l| l.set(0));
            let start = Instant::now();
            let err = if thumbnail {
                process_thumbnail(&input, &LIMITS).map(drop)
            } else {
                process_image(&input, &LIMITS).map(drop)
            }
            .expect_err(name);
            let elapsed = start.elapsed();
            let largest = LARGEST.with(Cell::get);
            assert!(elapsed < Duration::from_secs(2), "{name}: took {elapsed:?}");
            assert!(
                largest < 64 * 1024 * 1024,
                "{name}: asked for {largest} bytes at once"
            );
            match dims {
                Some((width, height)) => assert_eq!(
                    err,
                    MediaError::TooManyPixels {
                        width,
                        height,
                        limit: LIMITS.max_pixels
                    },
                    "{name}"
                ),
                // Refused one way or the other: the pixel check or the decoder's own limits.
                None => assert!(
                    matches!(
                        err,
                        MediaError::TooManyPixels { .. } | MediaError::Undecodable { .. }
                    ),
                    "{name}: {err:?}"
                ),
            }
        }
    }
}

#[test]
fn limits_on_bytes_and_pixels_come_from_the_caller() {
    let small = png(&halves(50, 50));
    let tight = Limits {
        max_bytes: small.len() as u64 - 1,
        max_pixels: 10_000,
    };
    assert_eq!(
        process_image(&small, &tight).unwrap_err(),
        MediaError::TooLarge {
            limit: small.len() as u64 - 1
        }
    );
    let few_pixels = Limits {
        max_bytes: 1 << 20,
        max_pixels: 2499,
    };
    assert_eq!(
        process_image(&small, &few_pixels).unwrap_err(),
        MediaError::TooManyPixels {
            width: 50,
            height: 50,
            limit: 2499
        }
    );
    let err = MediaError::TooLarge {
        limit: 16 * 1024 * 1024,
    };
    assert_eq!(err.to_string(), "size must be less than 16 MB");
}

#[test]
fn thumbnails_are_previews_of_any_image_format() {
    let cases: Vec<FormatCase> = vec![
        ("jpeg", jpeg(&halves(1280, 720)), Format::Jpeg, (640, 360)),
        ("png", png(&halves(100, 50)), Format::Png, (100, 50)),
        ("gif", gif(900, 900, 2), Format::Png, (480, 480)),
        (
            "jpeg with exif",
            with_jpeg_metadata(&jpeg(&halves(40, 20)), &exif(6)),
            Format::Jpeg,
            (20, 40),
        ),
    ];
    for (name, input, format, dims) in cases {
        let (rendition, blurhash) = process_thumbnail(&input, &LIMITS).unwrap();
        assert_eq!(rendition.format, format, "{name}");
        assert_eq!((rendition.width, rendition.height), dims, "{name}");
        assert_eq!(blurhash.len(), 36, "{name}");
        assert_no_metadata(&rendition.bytes, name);
    }
}

#[test]
fn focus_points_are_two_numbers_in_range() {
    let cases = [
        (json!("0,0"), Some((0.0, 0.0))),
        (json!("-0.5, 0.25"), Some((-0.5, 0.25))),
        (json!("1,-1"), Some((1.0, -1.0))),
        (json!([0.1, "0.2"]), Some((0.1, 0.2))),
        (json!("1.01,0"), None),
        (json!("0"), None),
        (json!("a,b"), None),
        (json!("NaN,0"), None),
        (json!("inf,0"), None),
        (json!("0,0,0"), None),
        (json!(0.5), None),
        (json!(null), None),
    ];
    for (value, want) in cases {
        assert_eq!(parse_focus(&value), want, "{value}");
    }
}
