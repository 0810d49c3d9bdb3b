//! Media attachments over HTTP against the real server, PostgreSQL, Redis and S3 store:
//! every image type processed and served from the bucket without its metadata, video and
//! audio accepted for the worker (202, then 206), updates and deletion by the owner only,
//! scopes, limits, and refused uploads that leave nothing behind.

mod common;

use std::io::Cursor;

use common::*;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ImageEncoder, RgbImage};
use reqwest::header;
use serde_json::{Value, json};

enum Body {
    None,
    Form(Multipart),
    Json(Value),
}

/// A server on a fresh database and a fresh bucket whose `media/` anyone may read (what the
/// operator sets up).
struct Api {
    server: Server,
    db: String,
    http: reqwest::Client,
    /// Where the bucket's objects are fetched from, with a trailing slash.
    public: String,
    /// Last: removed after the server has stopped.
    bucket: TestBucket,
}

impl Api {
    async fn start() -> Self {
        let bucket = TestBucket::public("media").await;
        let env = bucket.server_env();
        let (server, db) = api_on_fresh_database(&env_refs(&env)).await;
        Self {
            server,
            db,
            http: reqwest::Client::new(),
            public: bucket.public_url(),
            bucket,
        }
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Body) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.base_url));
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        req = match body {
            Body::None => req,
            Body::Form(form) => req
                .header(header::CONTENT_TYPE, Multipart::content_type())
                .body(form.finish()),
            Body::Json(v) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(v.to_string()),
        };
        Reply::read(req.send().await.expect("the server answers")).await
    }

    async fn upload(&self, path: &str, token: &str, form: Multipart) -> Reply {
        self.call("POST", path, Some(token), Body::Form(form)).await
    }

    /// Anonymous, as a browser fetches media.
    async fn fetch(&self, url: &str) -> Reply {
        assert!(url.starts_with(&self.public), "{url} is not in the bucket");
        Reply::read(self.http.get(url).send().await.unwrap()).await
    }

    async fn conn(&self) -> sqlx::PgConnection {
        <sqlx::PgConnection as sqlx::Connection>::connect(&self.db)
            .await
            .unwrap()
    }

    /// An account with a token of `scopes`: `(account_id, token)`.
    async fn user(&self, username: &str, scopes: &str) -> (i64, String) {
        let mut conn = self.conn().await;
        let (account_id,): (i64,) =
            sqlx::query_as("INSERT INTO accounts (username) VALUES ($1) RETURNING id")
                .bind(username)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let (user_id,): (i64,) = sqlx::query_as(
            "INSERT INTO users (account_id, email, password_hash, confirmed_at) \
             VALUES ($1, $2, 'not-a-hash', now()) RETURNING id",
        )
        .bind(account_id)
        .bind(format!("{username}@mail.example"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let token = issue_token(&self.db, Some(user_id), scopes).await;
        (account_id, token)
    }

    async fn keys(&self) -> Vec<String> {
        self.bucket.keys().await
    }

    async fn rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM media_attachments")
            .fetch_one(&mut self.conn().await)
            .await
            .unwrap()
    }
}

// Fixtures -------------------------------------------------------------------------------

fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, 120])
    })
}

fn encode_jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

fn encode_png(image: &RgbImage) -> Vec<u8> {
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

fn encode_webp(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

fn encode_gif(width: u16, height: u16, frames: u8) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let palette = [255, 0, 0, 0, 0, 255];
        let mut e = gif::Encoder::new(&mut out, width, height, &palette).unwrap();
        e.set_repeat(gif::Repeat::Infinite).unwrap();
        e.write_raw_extension(gif::AnyExtension(0xfe), &[b"SECRET-COMMENT"])
            .unwrap();
        for i in 0..frames {
            let frame = gif::Frame {
                width,
                height,
                delay: 10,
                buffer: vec![i % 2; usize::from(width) * usize::from(height)].into(),
                ..gif::Frame::default()
            };
            e.write_frame(&frame).unwrap();
        }
    }
    out
}

/// A big-endian EXIF block with a description and a GPS position (48°51'24.17"N).
fn exif_with_gps() -> Vec<u8> {
    let description = b"SECRET-HOME-ADDRESS\0";
    let mut t = b"MM\0\x2a\0\0\0\x08".to_vec();
    let gps_at = 8 + 2 + 2 * 12 + 4 + description.len() as u32;
    let rationals_at = gps_at + 2 + 2 * 12 + 4;
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        t.extend(tag.to_be_bytes());
        t.extend(kind.to_be_bytes());
        t.extend(count.to_be_bytes());
        t.extend(value);
    };
    t.extend(2u16.to_be_bytes());
    entry(
        &mut t,
        0x010e,
        2,
        description.len() as u32,
        38u32.to_be_bytes(),
    );
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

/// A camera's JPEG: EXIF with GPS and an XMP packet after SOI.
fn jpeg_with_gps(image: &RgbImage) -> Vec<u8> {
    let jpeg = encode_jpeg(image);
    let segment = |marker: u8, payload: &[u8]| {
        let mut s = vec![0xff, marker];
        s.extend(((payload.len() + 2) as u16).to_be_bytes());
        s.extend(payload);
        s
    };
    let mut out = jpeg[..2].to_vec();
    out.extend(segment(
        0xe1,
        &[b"Exif\0\0".as_slice(), &exif_with_gps()].concat(),
    ));
    out.extend(segment(
        0xe1,
        b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>SECRET-XMP</x:xmpmeta>",
    ));
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[track_caller]
fn assert_no_metadata(bytes: &[u8], what: &str) {
    for needle in [
        b"SECRET".as_slice(),
        b"Exif",
        b"http://ns.adobe.com/xap",
        b"\0\0\0\x30\0\0\0\x01\0\0\0\x33\0\0\0\x01",
    ] {
        assert!(
            !contains(bytes, needle),
            "{what}: {:?} survived",
            String::from_utf8_lossy(needle)
        );
    }
}

const MP4: &[u8] = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom\x00\x00\x00\x08free";
const MP3: &[u8] = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64\x00\x00\x00\x00";

fn geometry(width: u32, height: u32) -> Value {
    json!({
        "width": width, "height": height, "size": format!("{width}x{height}"),
        "aspect": f64::from(width) / f64::from(height),
    })
}

// Tests ----------------------------------------------------------------------------------

/// A name, the file, the type the client claims, the type stored, and the size.
type ImageCase = (
    &'static str,
    Vec<u8>,
    &'static str,
    &'static str,
    (u32, u32),
);

#[tokio::test]
async fn every_image_type_is_processed_and_served_from_the_bucket_without_metadata() {
    let api = Api::start().await;
    let (_, token) = api.user("ada", "write:media").await;
    let files_prefix = format!("{}media/media_attachments/files/", api.public);

    // The claimed names and types are wrong on purpose: the bytes decide.
    let cases: Vec<ImageCase> = vec![
        (
            "jpeg with gps",
            jpeg_with_gps(&picture(64, 48)),
            "image/png",
            "image/jpeg",
            (64, 48),
        ),
        (
            "png",
            encode_png(&picture(50, 70)),
            "image/jpeg",
            "image/png",
            (50, 70),
        ),
        (
            "gif",
            encode_gif(30, 20, 3),
            "application/octet-stream",
            "image/gif",
            (30, 20),
        ),
        // Opaque WebP is stored as JPEG (see the media module).
        (
            "webp",
            encode_webp(&picture(40, 40)),
            "image/webp",
            "image/jpeg",
            (40, 40),
        ),
    ];
    for (i, (name, bytes, claimed, mime, (w, h))) in cases.into_iter().enumerate() {
        // Both API versions process images synchronously.
        let path = if i % 2 == 0 {
            "/api/v2/media"
        } else {
            "/api/v1/media"
        };
        let description = format!("A picture of {name}");
        let media = api
            .upload(
                path,
                &token,
                Multipart::default()
                    .text("description", &description)
                    .text("focus", "-0.5,0.25")
                    .file("file", "photo.png", claimed, &bytes),
            )
            .await
            .expect(200)
            .json();
        let id = media["id"].as_str().unwrap().to_string();
        assert!(id.parse::<i64>().is_ok(), "{name}: {id}");
        assert_eq!(media["type"], "image", "{name}");
        assert_eq!(media["description"], description.as_str(), "{name}");
        for absent in ["remote_url", "preview_remote_url", "text_url"] {
            assert_eq!(media[absent], Value::Null, "{name}: {absent}");
        }
        assert_eq!(
            media["meta"],
            json!({
                "original": geometry(w, h),
                "small": geometry(w, h),
                "focus": {"x": -0.5, "y": 0.25},
            }),
            "{name}"
        );
        let blurhash = media["blurhash"].as_str().unwrap();
        assert_eq!(blurhash.len(), 36, "{name}: {blurhash}");

        let url = media["url"].as_str().unwrap();
        let preview = media["preview_url"].as_str().unwrap();
        let ext = mime.rsplit('/').next().unwrap().replace("jpeg", "jpg");
        assert!(
            url.starts_with(&files_prefix) && url.ends_with(&format!("/original.{ext}")),
            "{name}: {url}"
        );
        // An animation's preview is a still.
        let (small_mime, small_ext) = match mime {
            "image/gif" => ("image/png", "png".to_string()),
            _ => (mime, ext.clone()),
        };
        assert!(
            preview.ends_with(&format!("/small.{small_ext}")),
            "{name}: {preview}"
        );
        for (url, mime) in [(url, mime), (preview, small_mime)] {
            let got = api.fetch(url).await.expect(200);
            assert_eq!(got.headers["content-type"], mime, "{name}: {url}");
            let cache = got
                .headers
                .get("cache-control")
                .map(|v| v.to_str().unwrap());
            assert!(
                cache.is_some_and(|c| c.contains("max-age=31536000")),
                "{name}: {cache:?}"
            );
            assert_no_metadata(&got.body, name);
            let decoded = image::load_from_memory(&got.body).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (w, h), "{name}");
        }

        // The owner reads it back: the same entity, ready.
        let again = api
            .call(
                "GET",
                &format!("/api/v1/media/{id}"),
                Some(&token),
                Body::None,
            )
            .await
            .expect(200)
            .json();
        assert_eq!(again, media, "{name}");
    }
    // The animation survived.
    let gif_url = {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT file_key FROM media_attachments WHERE content_type = 'image/gif'",
        )
        .fetch_all(&mut api.conn().await)
        .await
        .unwrap();
        format!("{}{}", api.public, rows[0].0)
    };
    let gif = api.fetch(&gif_url).await.expect(200);
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options.read_info(Cursor::new(&gif.body)).unwrap();
    let mut frames = 0;
    while decoder.read_next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert_eq!(frames, 3);
}

#[tokio::test]
async fn large_images_are_scaled_and_get_a_small_preview() {
    let api = Api::start().await;
    let (_, token) = api.user("bea", "write").await;
    let media = api
        .upload(
            "/api/v2/media",
            &token,
            Multipart::default().file(
                "file",
                "big.png",
                "image/png",
                &encode_png(&picture(1280, 720)),
            ),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(media["meta"]["original"], geometry(1280, 720));
    assert_eq!(media["meta"]["small"], geometry(640, 360));
    assert_eq!(media["meta"]["focus"], json!({"x": 0.0, "y": 0.0}));
    assert_eq!(media["description"], Value::Null);
    let small = api
        .fetch(media["preview_url"].as_str().unwrap())
        .await
        .expect(200);
    let decoded = image::load_from_memory(&small.body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (640, 360));
}

#[tokio::test]
async fn refused_uploads_leave_nothing_in_the_bucket_or_the_database() {
    let api = Api::start().await;
    let (_, token) = api.user("cyd", "write:media").await;
    let png = encode_png(&picture(8, 8));
    let mut bomb = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    bomb.extend(100_000u32.to_be_bytes());
    bomb.extend(100_000u32.to_be_bytes());
    bomb.extend([8, 6, 0, 0, 0]);
    bomb.extend(crc32(&bomb[12..]).to_be_bytes());
    let idat = b"IDAT\x78\x9c\x63\x60\x00\x00\x00\x02\x00\x01";
    bomb.extend(10u32.to_be_bytes());
    bomb.extend(idat);
    bomb.extend(crc32(idat).to_be_bytes());
    bomb.extend(b"\0\0\0\0IEND\xae\x42\x60\x82");
    let mut too_big = png.clone();
    too_big.resize(16 * 1024 * 1024 + 1, 0);

    let file =
        |name: &str, bytes: &[u8]| Multipart::default().file("file", name, "image/png", bytes);
    let cases: Vec<(&str, Multipart, &str)> = vec![
        (
            "text named .png",
            file("notes.png", b"just a text file, honest"),
            "File is not a supported image, video or audio file",
        ),
        (
            "zip",
            file("archive.png", b"PK\x03\x04\x14\x00\x00\x00\x08\x00rest"),
            "File is not a supported",
        ),
        (
            "pdf",
            file("doc.png", b"%PDF-1.7\n1 0 obj <<>> endobj"),
            "File is not a supported",
        ),
        (
            "html",
            file("page.png", b"<!DOCTYPE html><script>alert(1)</script>"),
            "File is not a supported",
        ),
        (
            "JPEG magic then HTML",
            file(
                "x.jpg",
                b"\xff\xd8\xff<html><script>alert(1)</script></html>",
            ),
            "File could not be read as a JPEG image",
        ),
        (
            "decompression bomb",
            file("bomb.png", &bomb),
            "File is 100000x100000: images of more than 33177600 pixels are not supported",
        ),
        (
            "over the image size limit",
            file("huge.png", &too_big),
            "File size must be less than 16 MB",
        ),
        (
            "no file",
            Multipart::default().text("description", "nothing"),
            "File can't be blank",
        ),
        (
            "description too long",
            file("ok.png", &png).text("description", &"d".repeat(1501)),
            "Description is too long (maximum is 1500 characters)",
        ),
        (
            "focus out of range",
            file("ok.png", &png).text("focus", "1.5,0"),
            "Focus must be two numbers from -1.0 to 1.0",
        ),
        (
            "a thumbnail for an image",
            file("ok.png", &png).file("thumbnail", "t.png", "image/png", &png),
            "Thumbnail can only be given for video and audio",
        ),
        (
            "a video as a thumbnail",
            Multipart::default()
                .file("file", "v.mp4", "video/mp4", MP4)
                .file("thumbnail", "t.mp4", "video/mp4", MP4),
            "Thumbnail must be a JPEG, PNG, GIF or WebP image file, not MP4",
        ),
        (
            "a broken thumbnail",
            Multipart::default()
                .file("file", "v.mp4", "video/mp4", MP4)
                .file("thumbnail", "t.png", "image/png", &png[..40]),
            "Thumbnail could not be read as a PNG image",
        ),
    ];
    for (name, form, message) in cases {
        eprintln!("case: {name}");
        api.upload("/api/v2/media", &token, form)
            .await
            .refused(message);
    }

    // A video over its own, larger limit.
    let mut long_video = MP4.to_vec();
    long_video.resize(99 * 1024 * 1024 + 1, 0);
    api.upload(
        "/api/v2/media",
        &token,
        Multipart::default().file("file", "long.mp4", "video/mp4", &long_video),
    )
    .await
    .refused("File size must be less than 99 MB");

    assert_eq!(api.keys().await, Vec::<String>::new());
    assert_eq!(api.rows().await, 0);
}

#[tokio::test]
async fn video_and_audio_wait_for_the_worker() {
    let api = Api::start().await;
    let (account, token) = api.user("dot", "write:media").await;
    let thumbnail = encode_png(&picture(1280, 720));

    // 202 with no URL yet, on both versions; the thumbnail is the preview.
    let video = api
        .upload(
            "/api/v2/media",
            &token,
            Multipart::default()
                .text("description", "a clip")
                .file("file", "clip.bin", "application/octet-stream", MP4)
                .file("thumbnail", "poster.jpg", "image/jpeg", &thumbnail),
        )
        .await
        .expect(202)
        .json();
    assert_eq!(video["type"], "video");
    assert_eq!(video["url"], Value::Null);
    assert_eq!(video["description"], "a clip");
    assert_eq!(video["meta"]["small"], geometry(640, 360));
    assert_eq!(video["blurhash"].as_str().unwrap().len(), 36);
    let poster = video["preview_url"].as_str().unwrap();
    assert!(
        poster.starts_with(&format!(
            "{}media/media_attachments/thumbnails/",
            api.public
        )),
        "{poster}"
    );
    let got = api.fetch(poster).await.expect(200);
    assert_eq!(got.headers["content-type"], "image/png");

    let audio = api
        .upload(
            "/api/v1/media",
            &token,
            Multipart::default().file("file", "song.mp3", "audio/mpeg", MP3),
        )
        .await
        .expect(202)
        .json();
    assert_eq!(audio["type"], "audio");
    assert_eq!(
        (audio["url"].clone(), audio["preview_url"].clone()),
        (Value::Null, Value::Null)
    );

    // The uploads wait in the bucket as received, with their real types, for the worker.
    let mut conn = api.conn().await;
    let pending: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT file_key, content_type, state, account_id FROM media_attachments ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(pending.len(), 2);
    for ((key, content_type, state, owner), (ext, mime, bytes)) in pending
        .iter()
        .zip([("mp4", "video/mp4", MP4), ("mp3", "audio/mpeg", MP3)])
    {
        assert_eq!((state.as_str(), *owner), ("processing", account));
        assert_eq!(content_type, mime);
        assert!(
            key.starts_with("media/media_attachments/files/")
                && key.ends_with(&format!("/original.{ext}")),
            "{key}"
        );
        let object = api
            .bucket
            .s3
            .get_object()
            .bucket(&api.bucket.name)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(object.content_type(), Some(mime));
        assert_eq!(
            object.body.collect().await.unwrap().into_bytes().as_ref(),
            bytes
        );
    }

    // 206 while processing, 200 once the worker is done, 422 if it failed.
    let path = format!("/api/v1/media/{}", video["id"].as_str().unwrap());
    let polled = api
        .call("GET", &path, Some(&token), Body::None)
        .await
        .expect(206)
        .json();
    assert_eq!(polled, video);
    sqlx::query("UPDATE media_attachments SET state = 'ready' WHERE type = 'video'")
        .execute(&mut conn)
        .await
        .unwrap();
    let ready = api
        .call("GET", &path, Some(&token), Body::None)
        .await
        .expect(200)
        .json();
    assert!(ready["url"].as_str().unwrap().ends_with("/original.mp4"));
    sqlx::query("UPDATE media_attachments SET state = 'failed' WHERE type = 'video'")
        .execute(&mut conn)
        .await
        .unwrap();
    api.call("GET", &path, Some(&token), Body::None)
        .await
        .refused("Error processing");
}

#[tokio::test]
async fn only_the_owner_updates_and_deletes_and_only_while_unattached() {
    let api = Api::start().await;
    let (owner, token) = api.user("eve", "write:media").await;
    let (_, other) = api.user("fay", "write:media read").await;
    let png = encode_png(&picture(20, 10));

    let image = api
        .upload(
            "/api/v2/media",
            &token,
            Multipart::default().file("file", "a.png", "image/png", &png),
        )
        .await
        .expect(200)
        .json();
    let image_path = format!("/api/v1/media/{}", image["id"].as_str().unwrap());

    // Someone else's media does not exist for them.
    api.call("GET", &image_path, Some(&other), Body::None)
        .await
        .expect(404);
    api.call(
        "PUT",
        &image_path,
        Some(&other),
        Body::Json(json!({"description": "mine"})),
    )
    .await
    .expect(404);
    api.call("DELETE", &image_path, Some(&other), Body::None)
        .await
        .expect(404);
    api.call(
        "GET",
        "/api/v1/media/not-a-number",
        Some(&token),
        Body::None,
    )
    .await
    .expect(404);

    // The owner changes the description (JSON) and the focus (multipart).
    let updated = api
        .call(
            "PUT",
            &image_path,
            Some(&token),
            Body::Json(json!({"description": "a wide picture"})),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(updated["description"], "a wide picture");
    let updated = api
        .call(
            "PUT",
            &image_path,
            Some(&token),
            Body::Form(Multipart::default().text("focus", "0.1,-0.9")),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(updated["meta"]["focus"], json!({"x": 0.1, "y": -0.9}));
    assert_eq!(updated["description"], "a wide picture");
    assert_eq!(updated["meta"]["original"], geometry(20, 10));
    api.call(
        "PUT",
        &image_path,
        Some(&token),
        Body::Json(json!({"focus": "3,3"})),
    )
    .await
    .refused("Focus must be");
    api.call(
        "PUT",
        &image_path,
        Some(&token),
        Body::Form(Multipart::default().file("thumbnail", "t.png", "image/png", &png)),
    )
    .await
    .refused("Thumbnail can only be given for video and audio");

    // A video's thumbnail is replaced: a new object, the old one removed.
    let video = api
        .upload(
            "/api/v2/media",
            &token,
            Multipart::default()
                .file("file", "v.mp4", "video/mp4", MP4)
                .file("thumbnail", "t.png", "image/png", &png),
        )
        .await
        .expect(202)
        .json();
    let video_path = format!("/api/v1/media/{}", video["id"].as_str().unwrap());
    let first = video["preview_url"].as_str().unwrap().to_string();
    let replaced = api
        .call(
            "PUT",
            &video_path,
            Some(&token),
            Body::Form(Multipart::default().file(
                "thumbnail",
                "t.jpg",
                "image/jpeg",
                &encode_jpeg(&picture(30, 60)),
            )),
        )
        .await
        .expect(206)
        .json();
    let second = replaced["preview_url"].as_str().unwrap();
    assert_ne!(second, first);
    assert!(second.ends_with(".jpg"), "{second}");
    assert_eq!(replaced["meta"]["small"], geometry(30, 60));
    assert_ne!(replaced["blurhash"], video["blurhash"]);
    api.fetch(second).await.expect(200);
    assert_ne!(api.fetch(&first).await.status, 200);

    // Attached to a status, media can no longer be changed or deleted here.
    let mut conn = api.conn().await;
    let (status,): (i64,) =
        sqlx::query_as("INSERT INTO statuses (account_id, text) VALUES ($1, 'hi') RETURNING id")
            .bind(owner)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    sqlx::query("UPDATE media_attachments SET status_id = $1 WHERE id = $2")
        .bind(status)
        .bind(image["id"].as_str().unwrap().parse::<i64>().unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    api.call(
        "PUT",
        &image_path,
        Some(&token),
        Body::Json(json!({"description": "x"})),
    )
    .await
    .refused("attached to a status");
    api.call("DELETE", &image_path, Some(&token), Body::None)
        .await
        .refused("currently used by a status");

    // Unattached, it goes, with its files.
    let keys_before = api.keys().await;
    let reply = api
        .call("DELETE", &video_path, Some(&token), Body::None)
        .await
        .expect(200);
    assert_eq!(reply.json(), json!({}));
    api.call("GET", &video_path, Some(&token), Body::None)
        .await
        .expect(404);
    let keys_after = api.keys().await;
    assert_eq!(
        keys_before.len() - keys_after.len(),
        2,
        "{keys_before:?} -> {keys_after:?}"
    );
    assert!(
        keys_after
            .iter()
            .all(|k| !k.ends_with(".mp4") && !k.contains("thumbnails"))
    );
    assert_eq!(api.rows().await, 1);
}

#[tokio::test]
async fn media_endpoints_need_a_user_token_with_write_media() {
    let api = Api::start().await;
    let (_, writer) = api.user("gus", "write:media").await;
    let (_, reader) = api.user("hal", "read write:statuses").await;
    let app_token = issue_token(&api.db, None, "write").await;
    let png = encode_png(&picture(4, 4));
    let media = api
        .upload(
            "/api/v2/media",
            &writer,
            Multipart::default().file("file", "a.png", "image/png", &png),
        )
        .await
        .expect(200)
        .json();
    let path = format!("/api/v1/media/{}", media["id"].as_str().unwrap());

    for (method, path) in [
        ("POST", "/api/v2/media"),
        ("POST", "/api/v1/media"),
        ("GET", path.as_str()),
        ("PUT", path.as_str()),
        ("DELETE", path.as_str()),
    ] {
        let form = || Body::Form(Multipart::default().file("file", "a.png", "image/png", &png));
        api.call(method, path, Some(&reader), form())
            .await
            .expect(403);
        api.call(method, path, None, form()).await.expect(401);
        api.call(method, path, Some(&app_token), form())
            .await
            .expect(422);
    }
    assert_eq!(api.rows().await, 1);
}

#[tokio::test]
async fn media_routes_take_large_bodies_and_refuse_larger_ones_early() {
    let api = Api::start().await;
    let (_, token) = api.user("ida", "write:media").await;

    // Over axum's default 2 MB: accepted here.
    let noise = RgbImage::from_fn(1000, 1000, |x, y| {
        let v = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) as u8;
        image::Rgb([v, v.rotate_left(3), v.rotate_left(5)])
    });
    let big = encode_png(&noise);
    assert!(big.len() > 2 * 1024 * 1024, "{}", big.len());
    let media = api
        .upload(
            "/api/v2/media",
            &token,
            Multipart::default().file("file", "n.png", "image/png", &big),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(media["meta"]["original"], geometry(1000, 1000));

    // Elsewhere the default stays.
    let reply = api
        .call(
            "POST",
            "/api/v1/apps",
            None,
            Body::Json(json!({"client_name": "x".repeat(3 * 1024 * 1024), "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"})),
        )
        .await;
    assert!(
        matches!(reply.status, 400 | 413),
        "{} {}",
        reply.status,
        reply.text()
    );

    // A declared length over the media limit is answered before the body is sent.
    let addr = api
        .server
        .base_url
        .trim_start_matches("http://")
        .to_string();
    let request = format!(
        "POST /api/v2/media HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: 200000000\r\nConnection: close\r\n\r\n"
    );
    let response = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .expect("an answer without the body");
        response
    })
    .await
    .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("a media upload may take"), "{response}");
    assert_eq!(api.rows().await, 1);
}
