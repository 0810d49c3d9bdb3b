//! The remote media cache and its retention against real PostgreSQL and S3, with a remote
//! server of the test's own on loopback: remote attachments are copied into the bucket's
//! cache prefix (served from our URL, `remote_url` theirs), too large or mislabelled files
//! stay remote, and the periodic jobs drop expired copies (back to the remote URL) and
//! expired preview card images (the card stays). End to end, a Note delivered to the inbox
//! gets both from the worker.

mod common;
mod peer;

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::header;
use axum::routing::get;
use common::*;
use fedi_server::api::entities::status::load_statuses_from;
use fedi_server::state::AppState;
use fedi_server::tasks::{maintenance, remote_media};
use serde_json::{Value, json};
use sqlx::PgPool;

fn photo_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(800, 600, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The head of an MP4 file: what detection reads.
fn clip_mp4() -> Vec<u8> {
    let mut v = b"\0\0\0\x18ftypisom\0\0\0\0isommp41".to_vec();
    v.extend_from_slice(&[0u8; 512]);
    v
}

/// A remote server's media, recording the paths asked of it.
async fn remote_site() -> (String, Arc<Mutex<Vec<String>>>) {
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = hits.clone();
    // One byte over Mastodon's image limit.
    let big = vec![0u8; 16 * 1024 * 1024 + 1];
    let app = Router::new()
        .route(
            "/photo.png",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], photo_png()) }),
        )
        .route(
            "/clip.mp4",
            get(|| async { ([(header::CONTENT_TYPE, "video/mp4")], clip_mp4()) }),
        )
        .route(
            "/big.png",
            get(move || {
                let big = big.clone();
                async move { ([(header::CONTENT_TYPE, "image/png")], big) }
            }),
        )
        .route(
            "/fake.png",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/png")],
                    "<html>not an image</html>",
                )
            }),
        )
        .route(
            "/article",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html")],
                    "<html><head><meta property=\"og:title\" content=\"Remote article\">\
                     </head></html>",
                )
            }),
        )
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                record.lock().unwrap().push(req.uri().path().to_string());
                next.run(req)
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

struct Env {
    state: AppState,
    db: PgPool,
    bucket: TestBucket,
    _vars: Vec<(&'static str, String)>,
}

async fn env(retention_days: &str) -> Env {
    install_crypto_provider();
    let db_url = migrated_database().await;
    let bucket = TestBucket::public("mcache").await;
    let mut vars = bucket.server_env();
    vars.extend([
        ("FEDI_DOMAIN", unique_domain()),
        ("FEDI_DATABASE_URL", db_url.clone()),
        ("FEDI_REDIS_URL", service_env("FEDI_TEST_REDIS_URL")),
        ("FEDI_FEDERATION_ALLOW_LOOPBACK", "true".into()),
        ("FEDI_MEDIA_CACHE_RETENTION_DAYS", retention_days.into()),
        ("FEDI_PREVIEW_CARD_RETENTION_DAYS", "14".into()),
    ]);
    let state = AppState::new(&config_from(&env_refs(&vars))).unwrap();
    let db = PgPool::connect(&db_url).await.unwrap();
    Env {
        state,
        db,
        bucket,
        _vars: vars,
    }
}

/// A remote status by a remote account with attachments `(type, url)`; returns its id and
/// the attachments' ids in order.
async fn remote_status(db: &PgPool, base: &str, media: &[(&str, String)]) -> (i64, Vec<i64>) {
    let account: i64 = sqlx::query_scalar(
        "INSERT INTO accounts (username, domain, uri) VALUES ('bob', 'remote.example', $1) \
         RETURNING id",
    )
    .bind(format!("{base}/users/bob"))
    .fetch_one(db)
    .await
    .unwrap();
    let status: i64 = sqlx::query_scalar(
        "INSERT INTO statuses (account_id, text, content_html, uri) \
         VALUES ($1, '', '<p>pictures</p>', $2) RETURNING id",
    )
    .bind(account)
    .bind(format!("{base}/users/bob/statuses/1"))
    .fetch_one(db)
    .await
    .unwrap();
    let mut ids = Vec::new();
    for (kind, url) in media {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO media_attachments (account_id, status_id, type, remote_url) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(account)
        .bind(status)
        .bind(kind)
        .bind(url)
        .fetch_one(db)
        .await
        .unwrap();
        ids.push(id);
    }
    sqlx::query("UPDATE statuses SET ordered_media_attachment_ids = $2 WHERE id = $1")
        .bind(status)
        .bind(&ids)
        .execute(db)
        .await
        .unwrap();
    (status, ids)
}

async fn attachments(e: &Env, status: i64) -> Vec<Value> {
    let shown = load_statuses_from(&e.db, &e.state, &[status], None)
        .await
        .unwrap();
    let v = serde_json::to_value(&shown[0]).unwrap();
    v["media_attachments"].as_array().unwrap().clone()
}

async fn exists(e: &Env, key: &str) -> bool {
    s3_client()
        .head_object()
        .bucket(&e.bucket.name)
        .key(key)
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn remote_media_are_copied_served_from_the_bucket_and_expire_back_to_remote() {
    let e = env("7").await;
    let (base, hits) = remote_site().await;
    let (status, ids) = remote_status(
        &e.db,
        &base,
        &[
            ("image", format!("{base}/photo.png")),
            ("video", format!("{base}/clip.mp4")),
            ("image", format!("{base}/big.png")),
            ("image", format!("{base}/fake.png")),
            (
                "image",
                "http://169.254.169.254/latest/meta-data/x.png".into(),
            ),
        ],
    )
    .await;

    // Before the job: every url is the remote one (hotlinked, as before the cache).
    for m in attachments(&e, status).await {
        assert_eq!(m["url"], m["remote_url"], "{m}");
    }

    assert_eq!(
        remote_media::cache_status_media(&e.state, status)
            .await
            .unwrap(),
        2
    );
    let public = e.bucket.public_url();
    let shown = attachments(&e, status).await;
    let (photo, clip) = (&shown[0], &shown[1]);
    assert_eq!(photo["remote_url"], format!("{base}/photo.png"));
    let photo_url = photo["url"].as_str().unwrap();
    assert!(
        photo_url.starts_with(&format!("{public}media/cache/media_attachments/")),
        "{photo_url}"
    );
    assert!(photo["preview_url"].as_str().unwrap().starts_with(&public));
    assert!(photo["blurhash"].as_str().is_some_and(|b| b.len() > 6));
    assert_eq!(photo["meta"]["original"]["width"], 800);
    // Our copy is the processed image, fetched from the bucket.
    let copy = reqwest::get(photo_url)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(image::load_from_memory(&copy).unwrap().width(), 800);
    let clip_url = clip["url"].as_str().unwrap();
    assert!(
        clip_url.starts_with(&public) && clip_url.ends_with(".mp4"),
        "{clip_url}"
    );
    let clip_copy = reqwest::get(clip_url).await.unwrap();
    assert_eq!(clip_copy.headers()["content-type"], "video/mp4");
    assert_eq!(
        clip_copy.bytes().await.unwrap().as_ref(),
        clip_mp4().as_slice()
    );
    // Too large, not what it claims, or at a private address: still remote.
    for m in &shown[2..] {
        assert_eq!(m["url"], m["remote_url"], "{m}");
    }
    let mut asked = hits.lock().unwrap().clone();
    asked.sort();
    assert_eq!(asked, ["/big.png", "/clip.mp4", "/fake.png", "/photo.png"]);

    // A second run copies nothing again (the refused ones are tried again, in vain).
    assert_eq!(
        remote_media::cache_status_media(&e.state, status)
            .await
            .unwrap(),
        0
    );
    let asked = hits.lock().unwrap().clone();
    assert_eq!(asked.iter().filter(|p| *p == "/photo.png").count(), 1);
    assert_eq!(asked.iter().filter(|p| *p == "/clip.mp4").count(), 1);

    // The photo's copy is past the 7-day retention, the clip's not yet.
    let keys: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "SELECT id, file_key, preview_key FROM media_attachments WHERE file_key IS NOT NULL ORDER BY id",
    )
    .fetch_all(&e.db)
    .await
    .unwrap();
    assert_eq!(keys.len(), 2);
    for (id, days) in [(ids[0], 8), (ids[1], 6)] {
        sqlx::query("UPDATE media_attachments SET cached_at = now() - make_interval(days => $2) WHERE id = $1")
            .bind(id)
            .bind(days)
            .execute(&e.db)
            .await
            .unwrap();
    }
    assert_eq!(maintenance::media_cache(&e.state).await.unwrap(), 1);
    let (_, photo_file, photo_preview) = &keys[0];
    assert!(!exists(&e, photo_file).await);
    assert!(!exists(&e, photo_preview.as_ref().unwrap()).await);
    assert!(exists(&e, &keys[1].1).await, "the clip is kept");
    let shown = attachments(&e, status).await;
    assert_eq!(
        shown[0]["url"],
        format!("{base}/photo.png"),
        "served from its server again"
    );
    assert_eq!(shown[0]["preview_url"], format!("{base}/photo.png"));
    assert_eq!(shown[1]["url"].as_str().unwrap(), clip_url);
    assert_eq!(maintenance::media_cache(&e.state).await.unwrap(), 0);

    // Expired, the photo can be copied again.
    assert_eq!(
        remote_media::cache_status_media(&e.state, status)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn preview_card_images_expire_and_the_cards_stay() {
    let e = env("7").await;
    let storage = e.state.storage.clone().unwrap();
    let account: i64 =
        sqlx::query_scalar("INSERT INTO accounts (username) VALUES ('ann') RETURNING id")
            .fetch_one(&e.db)
            .await
            .unwrap();
    let mut statuses = Vec::new();
    // (name, age in days): the 14-day retention takes the old image only.
    for (name, days) in [("old", 15), ("recent", 13)] {
        let key = format!("media/cache/preview_cards/images/{name}.png");
        storage
            .put(&key, axum::body::Bytes::from(photo_png()), "image/png")
            .await
            .unwrap();
        let card: i64 = sqlx::query_scalar(
            "INSERT INTO preview_cards (url, title, image_key, blurhash, width, height, updated_at) \
             VALUES ($1, $2, $3, 'LEHV6nWB2yk8pyo0adR*.7kCMdnj', 800, 600, \
                     now() - make_interval(days => $4)) RETURNING id",
        )
        .bind(format!("https://news.example/{name}"))
        .bind(name)
        .bind(&key)
        .bind(days)
        .fetch_one(&e.db)
        .await
        .unwrap();
        let status: i64 = sqlx::query_scalar(
            "INSERT INTO statuses (account_id, text) VALUES ($1, 'x') RETURNING id",
        )
        .bind(account)
        .fetch_one(&e.db)
        .await
        .unwrap();
        sqlx::query("INSERT INTO preview_cards_statuses (status_id, preview_card_id, url) VALUES ($1, $2, '')")
            .bind(status)
            .bind(card)
            .execute(&e.db)
            .await
            .unwrap();
        statuses.push((status, key));
    }
    assert_eq!(maintenance::preview_card_images(&e.state).await.unwrap(), 1);
    assert!(!exists(&e, &statuses[0].1).await);
    assert!(exists(&e, &statuses[1].1).await);
    let shown = load_statuses_from(&e.db, &e.state, &[statuses[0].0, statuses[1].0], None)
        .await
        .unwrap();
    let old = serde_json::to_value(&shown[0].card).unwrap();
    assert_eq!(old["title"], "old", "the card stays");
    assert_eq!(old["image"], Value::Null);
    assert_eq!(old["blurhash"], Value::Null);
    let recent = serde_json::to_value(&shown[1].card).unwrap();
    assert!(
        recent["image"]
            .as_str()
            .unwrap()
            .ends_with("/media/cache/preview_cards/images/recent.png")
    );
    assert_eq!(maintenance::preview_card_images(&e.state).await.unwrap(), 0);
}

/// Through the inbox and a worker: a remote Note's image is copied, a linked page previewed.
#[tokio::test]
async fn a_delivered_note_gets_its_media_copied_and_its_link_previewed() {
    install_crypto_provider();
    let db = migrated_database().await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let bucket = TestBucket::public("mingress").await;
    let (base, _) = remote_site().await;
    let remote = peer::Peer::start().await;
    let (actor, signer) = remote.actor(&remote.host("127.0.0.1"), "bob");
    let domain = unique_domain();
    let mut vars = bucket.server_env();
    vars.extend([
        ("FEDI_DOMAIN", domain.clone()),
        ("FEDI_FEDERATION_ALLOW_LOOPBACK", "true".into()),
    ]);
    let vars = env_refs(&vars);
    let api = start_api_with(&db, &redis, &vars).await;
    let _worker = start_worker(&db, &redis, &vars);

    let notes = [
        json!({"content": "<p>a photo</p>",
               "attachment": [{"type": "Document", "mediaType": "image/png",
                               "url": format!("{base}/photo.png"), "name": "a photo"}]}),
        json!({"content": format!("<p>read <a href=\"{base}/article\">this</a></p>")}),
    ];
    let mut uris = Vec::new();
    for (n, extra) in notes.iter().enumerate() {
        let uri = format!("{actor}/statuses/{n}");
        let mut note = json!({
            "id": uri, "type": "Note", "attributedTo": actor,
            "to": [peer::AS.to_string() + "#Public"], "published": "2026-11-28T05:00:00Z",
        });
        note.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let create = json!({
            "@context": peer::AS, "id": format!("{uri}/activity"), "type": "Create",
            "actor": actor, "to": note["to"], "object": note,
        });
        let (code, body) =
            peer::post_signed(&api.base_url, &domain, "/inbox", &signer, &create).await;
        assert_eq!(code, 202, "{body}");
        uris.push(uri);
    }

    let pg = PgPool::connect(&db).await.unwrap();
    let public = bucket.public_url();
    let show = |uri: String| {
        let (pg, api) = (pg.clone(), api.base_url.clone());
        async move {
            let id: i64 = sqlx::query_scalar("SELECT id FROM statuses WHERE uri = $1")
                .bind(uri)
                .fetch_optional(&pg)
                .await
                .unwrap()?;
            let r = reqwest::get(format!("{api}/api/v1/statuses/{id}"))
                .await
                .ok()?;
            r.json::<Value>().await.ok()
        }
    };
    let photo = eventually(
        std::time::Duration::from_secs(30),
        "the copied photo",
        || {
            let public = public.clone();
            let status = show(uris[0].clone());
            async move {
                let m = status.await?["media_attachments"][0].clone();
                m["url"].as_str()?.starts_with(&public).then_some(m)
            }
        },
    )
    .await;
    assert_eq!(photo["remote_url"], format!("{base}/photo.png"));
    assert_eq!(photo["description"], "a photo");
    let card = eventually(std::time::Duration::from_secs(30), "the card", || {
        let status = show(uris[1].clone());
        async move { Some(status.await?["card"].clone()).filter(|c| !c.is_null()) }
    })
    .await;
    assert_eq!(card["title"], "Remote article");
    assert_eq!(card["url"], format!("{base}/article"));
}
