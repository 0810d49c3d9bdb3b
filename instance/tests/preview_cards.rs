//! Link previews against real PostgreSQL, Redis and S3, with a web site of the test's own on
//! loopback (`FEDI_FEDERATION_ALLOW_LOOPBACK`): a posted link gets its card (image copied
//! into the bucket, `status.update` sent); mentions and hashtags are passed over; a huge
//! page is read up to the limit only; private addresses are never contacted.

mod common;

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use common::*;
use fedi_server::state::AppState;
use fedi_server::tasks::preview_cards::{self, PAGE_LIMIT};
use futures::StreamExt;
use serde_json::Value;

/// A web site on loopback that records the paths asked of it.
struct Site {
    base: String,
    hits: Arc<Mutex<Vec<String>>>,
}

fn cover_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

const ARTICLE: &str = "<!doctype html><html lang=\"en-GB\"><head><title>plain title</title>\
    <meta property=\"og:title\" content=\"A &quot;great&quot; article\">\
    <meta property=\"og:description\" content=\"What it is about\">\
    <meta property=\"og:image\" content=\"/cover.png\">\
    <meta property=\"og:image:alt\" content=\"A cover\">\
    <meta property=\"og:site_name\" content=\"The Site\">\
    <meta name=\"author\" content=\"Ann Author\"></head><body>text</body></html>";

impl Site {
    async fn start() -> Self {
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = hits.clone();
        const HTML: [(header::HeaderName, &str); 1] =
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
        // Twice the limit: the title before the cut, a description after it.
        let mut huge = String::from(
            "<html><head><meta property=\"og:title\" content=\"Huge page\"></head><body>",
        );
        huge.push_str(&"<p>padding</p>".repeat(2 * PAGE_LIMIT / 14));
        huge.push_str("<meta property=\"og:description\" content=\"after the cut\"></body></html>");
        let app = Router::new()
            .route("/article", get(move || async move { (HTML, ARTICLE) }))
            .route(
                "/huge",
                get(move || {
                    let huge = huge.clone();
                    async move { (HTML, huge) }
                }),
            )
            .route(
                "/cover.png",
                get(|| async { ([(header::CONTENT_TYPE, "image/png")], cover_png()) }),
            )
            .route(
                "/data.json",
                get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{}") }),
            )
            .fallback(|| async { (HTML, "<title>Any page</title>").into_response() })
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    record.lock().unwrap().push(req.uri().path().to_string());
                    next.run(req)
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, hits }
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

async fn status(db: &sqlx::PgPool, account: i64, html: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO statuses (account_id, text, content_html) VALUES ($1, '', $2) RETURNING id",
    )
    .bind(account)
    .bind(html)
    .fetch_one(db)
    .await
    .unwrap()
}

async fn card_of(db: &sqlx::PgPool, status: i64) -> Option<(i64, String, String, String)> {
    sqlx::query_as(
        "SELECT c.id, c.url, c.title, c.description FROM preview_cards_statuses ps \
         JOIN preview_cards c ON c.id = ps.preview_card_id WHERE ps.status_id = $1",
    )
    .bind(status)
    .fetch_optional(db)
    .await
    .unwrap()
}

/// The job itself, on statuses written straight into the database.
#[tokio::test]
async fn the_first_eligible_link_gets_a_card_and_huge_or_private_pages_none() {
    install_crypto_provider();
    let db_url = migrated_database().await;
    let bucket = TestBucket::public("cards").await;
    let site = Site::start().await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let domain = unique_domain();
    let mut env = bucket.server_env();
    env.extend([
        ("FEDI_DOMAIN", domain.clone()),
        ("FEDI_DATABASE_URL", db_url.clone()),
        ("FEDI_REDIS_URL", redis),
        ("FEDI_FEDERATION_ALLOW_LOOPBACK", "true".into()),
    ]);
    let state = AppState::new(&config_from(&env_refs(&env))).unwrap();
    let db = sqlx::PgPool::connect(&db_url).await.unwrap();
    let (account, _) = create_user(&db_url, "poster", "a long password 123").await;
    let base = &site.base;

    // Mention and hashtag links come first and are passed over.
    let with_mention = status(
        &db,
        account,
        &format!(
            "<p><span class=\"h-card\"><a href=\"{base}/@bob\" class=\"u-url mention\">@<span>bob</span></a></span> \
             <a href=\"{base}/tags/news\" class=\"mention hashtag\" rel=\"tag\">#<span>news</span></a> \
             read <a href=\"{base}/article#top\">this</a> and <a href=\"{base}/other\">that</a></p>"
        ),
    )
    .await;
    let card = preview_cards::fetch_card(&state, with_mention)
        .await
        .unwrap()
        .expect("a card");
    let (id, url, title, description) = card_of(&db, with_mention).await.unwrap();
    assert_eq!(id, card);
    assert_eq!(url, format!("{base}/article"), "fragment dropped");
    assert_eq!(title, "A \"great\" article");
    assert_eq!(description, "What it is about");
    assert_eq!(
        site.hits(),
        ["/article", "/cover.png"],
        "no mention, tag or second link"
    );

    // The Status entity carries it, with our copy of the image.
    let shown =
        fedi_server::api::entities::status::load_statuses_from(&db, &state, &[with_mention], None)
            .await
            .unwrap();
    let card_json = serde_json::to_value(&shown[0].card).unwrap();
    assert_eq!(card_json["type"], "link");
    assert_eq!(card_json["provider_name"], "The Site");
    assert_eq!(card_json["author_name"], "Ann Author");
    assert_eq!(
        card_json["authors"],
        serde_json::json!([{"name": "Ann Author", "url": "", "account": null}])
    );
    assert_eq!(card_json["image_description"], "A cover");
    assert_eq!(card_json["language"], "en");
    assert_eq!(
        (card_json["width"].clone(), card_json["height"].clone()),
        (64.into(), 48.into())
    );
    let image = card_json["image"].as_str().unwrap();
    assert!(image.starts_with(&bucket.public_url()), "{image}");
    assert!(image.contains("/media/cache/preview_cards/"), "{image}");
    assert!(card_json["blurhash"].as_str().is_some_and(|b| b.len() > 6));
    let copy = reqwest::get(image).await.unwrap();
    assert_eq!(copy.status(), 200);
    let bytes = copy.bytes().await.unwrap();
    assert_eq!(image::load_from_memory(&bytes).unwrap().width(), 64);

    // Another status linking the same page shares the card without a second fetch.
    let again = status(
        &db,
        account,
        &format!("<p><a href=\"{base}/article\">x</a></p>"),
    )
    .await;
    assert_eq!(
        preview_cards::fetch_card(&state, again).await.unwrap(),
        Some(card)
    );
    assert_eq!(site.hits().iter().filter(|p| *p == "/article").count(), 1);

    // A card older than two weeks is fetched again; its former image leaves the bucket.
    let image_key = || async {
        sqlx::query_scalar::<_, String>("SELECT image_key FROM preview_cards WHERE id = $1")
            .bind(card)
            .fetch_one(&db)
            .await
            .unwrap()
    };
    let old_key = image_key().await;
    sqlx::query("UPDATE preview_cards SET updated_at = now() - interval '15 days' WHERE id = $1")
        .bind(card)
        .execute(&db)
        .await
        .unwrap();
    let third = status(
        &db,
        account,
        &format!("<p><a href=\"{base}/article\">x</a></p>"),
    )
    .await;
    assert_eq!(
        preview_cards::fetch_card(&state, third).await.unwrap(),
        Some(card)
    );
    assert_eq!(site.hits().iter().filter(|p| *p == "/article").count(), 2);
    let new_key = image_key().await;
    assert_ne!(new_key, old_key);
    let s3 = s3_client();
    let head = |key: String| s3.head_object().bucket(&bucket.name).key(key).send();
    assert!(
        head(old_key).await.is_err(),
        "the replaced image is deleted"
    );
    assert!(head(new_key).await.is_ok());

    // Edited to lead with another link, the status takes that link's card; edited without
    // a change, it keeps its card unfetched; edited without a link, it has none.
    let edit = |id: i64, html: String| {
        let db = db.clone();
        async move {
            sqlx::query("UPDATE statuses SET content_html = $2 WHERE id = $1")
                .bind(id)
                .bind(html)
                .execute(&db)
                .await
                .unwrap();
        }
    };
    edit(again, format!("<p><a href=\"{base}/other\">x</a></p>")).await;
    let other = preview_cards::refresh_card(&state, again)
        .await
        .unwrap()
        .expect("the new link's card");
    assert_ne!(other, card);
    assert_eq!(card_of(&db, again).await.unwrap().2, "Any page");
    let asked = site.hits().len();
    edit(again, format!("<p>now <a href=\"{base}/other\">x</a></p>")).await;
    assert_eq!(
        preview_cards::refresh_card(&state, again).await.unwrap(),
        Some(other)
    );
    assert_eq!(site.hits().len(), asked);
    edit(again, "<p>no link</p>".into()).await;
    assert_eq!(
        preview_cards::refresh_card(&state, again).await.unwrap(),
        None
    );
    assert!(card_of(&db, again).await.is_none());

    // A page twice the limit is read up to the limit: what follows the cut is not seen.
    let huge = status(
        &db,
        account,
        &format!("<p><a href=\"{base}/huge\">big</a></p>"),
    )
    .await;
    preview_cards::fetch_card(&state, huge)
        .await
        .unwrap()
        .expect("a card");
    let (_, _, title, description) = card_of(&db, huge).await.unwrap();
    assert_eq!((title.as_str(), description.as_str()), ("Huge page", ""));

    // Private addresses (still refused with the loopback setting) and non-HTML: no card.
    for link in [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://[fd00::1]/".to_string(),
        format!("{base}/data.json"),
    ] {
        let s = status(&db, account, &format!("<p><a href=\"{link}\">x</a></p>")).await;
        assert_eq!(
            preview_cards::fetch_card(&state, s).await.unwrap(),
            None,
            "{link}"
        );
        assert!(card_of(&db, s).await.is_none(), "{link}");
    }
    // Only mentions, or a link to this server: nothing fetched at all.
    let hits_before = site.hits().len();
    let ours = status(
        &db,
        account,
        &format!("<p><a href=\"https://{domain}/@poster/1\">mine</a></p>"),
    )
    .await;
    assert_eq!(preview_cards::fetch_card(&state, ours).await.unwrap(), None);
    assert_eq!(site.hits().len(), hits_before);
}

fn id_of(v: &Value) -> i64 {
    v["id"].as_str().unwrap().parse().unwrap()
}

/// Through the API and a worker: the card arrives on the status and as `status.update`.
#[tokio::test]
async fn a_posted_link_gets_its_card_and_a_status_update_event() {
    install_crypto_provider();
    let db = migrated_database().await;
    let bucket = TestBucket::public("cardapi").await;
    let site = Site::start().await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let domain = unique_domain();
    let mut env = bucket.server_env();
    env.extend([
        ("FEDI_DOMAIN", domain.clone()),
        ("FEDI_FEDERATION_ALLOW_LOOPBACK", "true".into()),
    ]);
    let env = env_refs(&env);
    let api = start_api_with(&db, &redis, &env).await;
    let _worker = start_worker(&db, &redis, &env);
    let (account, user) = create_user(&db, "alice", "a long password 123").await;
    let token = issue_token(&db, Some(user), "read write").await;

    let client = redis::Client::open(redis.as_str()).unwrap();
    let namespace = fedi_server::redis_keys::Namespace::new(&domain);
    let home = format!("timeline:{account}");
    // Marked as listened to, as the streamer marks its clients' streams: the worker sends
    // nothing to a home stream nobody has open.
    let mut redis_conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(namespace.key(&fedi_server::events::channel::subscribed_key(&home)))
        .arg("1")
        .arg("EX")
        .arg(600)
        .query_async(&mut redis_conn)
        .await
        .unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(namespace.channel(&home)).await.unwrap();
    let mut messages = pubsub.into_on_message();

    let http = reqwest::Client::new();
    let posted: Value = http
        .post(format!("{}/api/v1/statuses", api.base_url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"status": format!("Worth a read: {}/article", site.base)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = id_of(&posted);
    assert_eq!(posted["card"], Value::Null, "the card comes later");

    let update = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(m) = messages.next().await {
            let body: Value = serde_json::from_str(&m.get_payload::<String>().unwrap()).unwrap();
            if body["event"] == "status.update" {
                return serde_json::from_str::<Value>(body["payload"].as_str().unwrap()).unwrap();
            }
        }
        panic!("subscription ended");
    })
    .await
    .expect("a status.update event");
    assert_eq!(id_of(&update), id);
    assert_eq!(update["card"]["title"], "A \"great\" article");
    assert_eq!(update["card"]["url"], format!("{}/article", site.base));

    let shown: Value = http
        .get(format!("{}/api/v1/statuses/{id}", api.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let card = &shown["card"];
    assert_eq!(card["description"], "What it is about");
    assert!(
        card["image"]
            .as_str()
            .unwrap()
            .starts_with(&bucket.public_url())
    );
    for field in ["author_url", "provider_url", "html", "embed_url"] {
        assert!(card[field].is_string(), "{field}: {card}");
    }

    // Edited to drop the link, the status loses its card.
    let edited = http
        .put(format!("{}/api/v1/statuses/{id}", api.base_url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"status": "Never mind"}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    eventually(Duration::from_secs(30), "the card gone", || async {
        let shown: Value = http
            .get(format!("{}/api/v1/statuses/{id}", api.base_url))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        shown["card"].is_null().then_some(())
    })
    .await;
}

/// Without the loopback setting the worker never connects to this machine, whatever name
/// or scheme the link uses.
#[tokio::test]
async fn loopback_pages_are_never_contacted_without_the_test_setting() {
    install_crypto_provider();
    let db = migrated_database().await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let domain = unique_domain();
    let env = [("FEDI_DOMAIN", domain.as_str())];
    let api = start_api_with(&db, &redis, &env).await;
    let worker = start_worker(&db, &redis, &env);
    let (_, user) = create_user(&db, "alice", "a long password 123").await;
    let token = issue_token(&db, Some(user), "read write").await;

    // Counts connections, whatever they carry.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(Mutex::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            *counted.lock().unwrap() += 1;
        }
    });

    let http = reqwest::Client::new();
    let links = [
        format!("https://127.0.0.1:{port}/page"),
        format!("https://localhost:{port}/page"),
        format!("http://localhost:{port}/page"),
    ];
    let mut ids = Vec::new();
    for link in &links {
        let posted: Value = http
            .post(format!("{}/api/v1/statuses", api.base_url))
            .bearer_auth(&token)
            .json(&serde_json::json!({"status": format!("see {link}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(id_of(&posted));
    }
    // Every preview job ran (the `pull` queue processed one per status).
    eventually(Duration::from_secs(30), "the preview jobs", || async {
        let m = reqwest::get(format!("{}/metrics", worker.base_url))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let done = m
            .lines()
            .find_map(|l| l.strip_prefix("fedi_jobs_processed_total{queue=\"pull\"} "))
            .and_then(|v| v.trim().parse::<f64>().ok())?;
        (done >= links.len() as f64).then_some(())
    })
    .await;
    assert_eq!(*connections.lock().unwrap(), 0);
    let pg = sqlx::PgPool::connect(&db).await.unwrap();
    let cards: i64 = sqlx::query_scalar("SELECT count(*) FROM preview_cards")
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(cards, 0);
}
