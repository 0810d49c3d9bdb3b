//! The orphaned-media clean-up against real PostgreSQL and S3: media never attached and
//! older than the retention leave the bucket and the database; recent uploads and attached
//! media stay; a second run finds nothing. And the sweeps' schedule: a worker starts them
//! only inside `FEDI_MAINTENANCE_WINDOW`, while its other periodic jobs run at any hour.

mod common;

use std::time::Duration;

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

/// `HH:MM+Nh` starting `offset` minutes from now (UTC), so that the test holds at any hour.
fn window_from_now(offset: i64, hours: u32) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 60;
    let start = (now + offset).rem_euclid(24 * 60);
    format!("{:02}:{:02}+{hours}h", start / 60, start % 60)
}

/// The period (seconds) of the worker's last heartbeat, 0 before the first.
async fn last_heartbeat(worker: &Server) -> f64 {
    let Ok(r) = reqwest::get(format!("{}/metrics", worker.base_url)).await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix("fedi_jobs_scheduler_heartbeat_timestamp_seconds ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn maintenance_sweeps_start_only_inside_the_maintenance_window() {
    let db = migrated_database().await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let domain = unique_domain();
    let (account, _) = create_user(&db, "uploader", "a long password 123").await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let (orphan,): (i64,) = sqlx::query_as(
        "INSERT INTO media_attachments (account_id, type, created_at) \
         VALUES ($1, 'image', now() - interval '2 days') RETURNING id",
    )
    .bind(account)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let orphan_left = || {
        let db = db.clone();
        async move {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
                .await
                .unwrap();
            let (left,): (bool,) =
                sqlx::query_as("SELECT EXISTS (SELECT 1 FROM media_attachments WHERE id = $1)")
                    .bind(orphan)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            left
        }
    };

    // A window opening in two hours: the heartbeat runs, second after second, the sweep not.
    let closed = window_from_now(120, 1);
    let env = [
        ("FEDI_DOMAIN", domain.as_str()),
        ("FEDI_WORKER_HEARTBEAT_SECONDS", "1"),
        ("FEDI_MAINTENANCE_WINDOW", closed.as_str()),
    ];
    let worker = start_worker(&db, &redis, &env);
    answers_health(&worker, "the worker").await;
    let first = eventually(Duration::from_secs(60), "a first heartbeat", || async {
        let beat = last_heartbeat(&worker).await;
        (beat > 0.0).then_some(beat)
    })
    .await;
    // The scheduler enqueues every due kind on each tick of a second: three more heartbeats
    // are three ticks in which a sweep would have been enqueued (and run: it is quick).
    eventually(Duration::from_secs(60), "three more heartbeats", || async {
        (last_heartbeat(&worker).await >= first + 3.0).then_some(())
    })
    .await;
    assert!(orphan_left().await, "swept outside the window {closed}");
    drop(worker);

    // A window around now (across midnight when run near it): the sweep runs at once, the
    // current hour's period never having been enqueued. The dead worker's scheduler lock
    // expires first.
    let open = window_from_now(-60, 2);
    let env = [
        ("FEDI_DOMAIN", domain.as_str()),
        ("FEDI_WORKER_HEARTBEAT_SECONDS", "1"),
        ("FEDI_MAINTENANCE_WINDOW", open.as_str()),
    ];
    let _worker = start_worker(&db, &redis, &env);
    eventually(
        Duration::from_secs(60),
        "the sweep in the window",
        || async { (!orphan_left().await).then_some(()) },
    )
    .await;
}
