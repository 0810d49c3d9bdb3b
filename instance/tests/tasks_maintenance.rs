//! The orphaned-media clean-up against real PostgreSQL and S3: media never attached and
//! older than the retention leave the bucket and the database; recent uploads and attached
//! media stay; a second run finds nothing.

mod common;

use common::*;
use fedi_server::state::AppState;
use fedi_server::tasks::maintenance;

async fn exists(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn orphaned_media_past_the_retention_leave_the_bucket_and_the_database() {
    let db = migrated_database().await;
    let bucket = TestBucket::new("orphans").await;
    let (endpoint, region, key_id, secret) = (
        service_env("FEDI_TEST_S3_ENDPOINT"),
        service_env("FEDI_TEST_S3_REGION"),
        service_env("FEDI_TEST_S3_ACCESS_KEY"),
        service_env("FEDI_TEST_S3_SECRET_KEY"),
    );
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let vars = [
        ("FEDI_DOMAIN", "test.example"),
        ("FEDI_DATABASE_URL", db.as_str()),
        ("FEDI_REDIS_URL", redis.as_str()),
        ("FEDI_S3_ENDPOINT", endpoint.as_str()),
        ("FEDI_S3_REGION", region.as_str()),
        ("FEDI_S3_BUCKET", bucket.name.as_str()),
        ("FEDI_S3_ACCESS_KEY_ID", key_id.as_str()),
        ("FEDI_S3_SECRET_ACCESS_KEY", secret.as_str()),
        ("FEDI_ORPHANED_MEDIA_RETENTION_HOURS", "24"),
    ];
    let config = config_from(&vars);
    let state = AppState::new(&config).unwrap();
    let storage = state.storage.clone().unwrap();

    let (account, _) = create_user(&db, "uploader", "a long password 123").await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let (status,): (i64,) =
        sqlx::query_as("INSERT INTO statuses (account_id, text) VALUES ($1, 'x') RETURNING id")
            .bind(account)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    // (name, age in hours, attached): only the old unattached one goes.
    let cases = [
        ("old", 25, false),
        ("recent", 23, false),
        ("attached", 48, true),
    ];
    let mut media = Vec::new();
    for (name, hours, attached) in cases {
        let keys: Vec<String> = ["file", "preview", "thumbnail"]
            .iter()
            .map(|k| format!("media/{name}/{k}.png"))
            .collect();
        for k in &keys {
            storage
                .put(k, axum::body::Bytes::from_static(b"\x89PNG"), "image/png")
                .await
                .unwrap();
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO media_attachments \
                 (account_id, status_id, type, file_key, preview_key, thumbnail_key, created_at) \
             VALUES ($1, $2, 'image', $3, $4, $5, now() - make_interval(hours => $6)) \
             RETURNING id",
        )
        .bind(account)
        .bind(attached.then_some(status))
        .bind(&keys[0])
        .bind(&keys[1])
        .bind(&keys[2])
        .bind(hours)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        media.push((name, id, keys));
    }

    assert_eq!(maintenance::orphaned_media(&state).await.unwrap(), 1);
    for (name, id, keys) in &media {
        let (row,): (bool,) =
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM media_attachments WHERE id = $1)")
                .bind(id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let kept = *name != "old";
        assert_eq!(row, kept, "{name}'s row");
        for k in keys {
            assert_eq!(exists(&bucket.s3, &bucket.name, k).await, kept, "{k}");
        }
    }
    assert_eq!(maintenance::orphaned_media(&state).await.unwrap(), 0);
}
