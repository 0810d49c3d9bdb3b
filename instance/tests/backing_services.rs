//! The services of `make services-up` are real and behave as later features rely on:
//! a streaming hot standby, a Redis Cluster that routes by slot, an S3 API and a mail sink.
//! When one of these fails, the test environment is broken, not the server.

mod common;

use std::time::Duration;

use common::*;
use sqlx::Connection;

#[tokio::test]
async fn the_standby_replays_writes_from_the_primary_and_refuses_its_own() {
    let primary_url = service_env("FEDI_TEST_DATABASE_URL");
    let replica_url = service_env("FEDI_TEST_DATABASE_REPLICA_URL");
    let mut primary = sqlx::PgConnection::connect(&primary_url).await.unwrap();
    let replica = sqlx::PgPool::connect(&replica_url).await.unwrap();

    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&replica)
        .await
        .unwrap();
    assert!(in_recovery, "the replica URL must point at a hot standby");

    sqlx::query("CREATE TABLE IF NOT EXISTS replication_probe (token text PRIMARY KEY)")
        .execute(&mut primary)
        .await
        .unwrap();
    let token = format!("{}-{:?}", std::process::id(), std::time::Instant::now());
    sqlx::query("INSERT INTO replication_probe VALUES ($1)")
        .bind(&token)
        .execute(&mut primary)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the row to reach the standby",
        || {
            let q = sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM replication_probe WHERE token = $1",
            )
            .bind(token.clone());
            let replica = replica.clone();
            async move { q.fetch_one(&replica).await.ok().filter(|n| *n == 1) }
        },
    )
    .await;

    let err = sqlx::query("INSERT INTO replication_probe VALUES ('x')")
        .execute(&replica)
        .await
        .expect_err("a standby is read-only");
    assert!(err.to_string().contains("read-only"), "{err}");
}

#[tokio::test]
async fn the_redis_cluster_serves_keys_from_every_shard() {
    let nodes: Vec<String> = service_env("FEDI_TEST_REDIS_CLUSTER_NODES")
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(nodes.len(), 6, "3 masters + 3 replicas");
    let client = redis::cluster::ClusterClient::new(nodes).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_size:3"), "{info}");

    // 64 keys land in different slots, hence on all three masters.
    for i in 0..64 {
        let key = format!("probe:{}:{i}", std::process::id());
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(i)
            .arg("EX")
            .arg(60)
            .query_async(&mut conn)
            .await
            .unwrap();
        let back: i64 = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(back, i);
    }
}

#[tokio::test]
async fn the_object_store_speaks_s3() {
    use aws_sdk_s3::primitives::ByteStream;
    let s3 = s3_client();
    let bucket = format!("probe-{}", std::process::id());
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let body = b"\x89PNG not really".to_vec();
    s3.put_object()
        .bucket(&bucket)
        .key("media/a.png")
        .content_type("image/png")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put object");
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key("media/a.png")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("image/png"));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        body.as_slice()
    );

    let missing = s3
        .get_object()
        .bucket(&bucket)
        .key("nope")
        .send()
        .await
        .unwrap_err();
    assert!(missing.into_service_error().is_no_such_key());

    s3.delete_object()
        .bucket(&bucket)
        .key("media/a.png")
        .send()
        .await
        .unwrap();
    s3.delete_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("delete empty bucket");
}

#[tokio::test]
async fn the_mail_sink_keeps_what_it_receives() {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let maildir = std::path::PathBuf::from(service_env("FEDI_TEST_SMTP_MAILDIR"));
    let marker = format!(
        "probe-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let mail = Message::builder()
        .from("Fedi <notifications@test.example>".parse().unwrap())
        .to("alice@example.org".parse().unwrap())
        .subject(&marker)
        .body(String::from("Confirm your address"))
        .unwrap();
    let port: u16 = service_env("FEDI_TEST_SMTP_PORT").parse().unwrap();
    let smtp =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(service_env("FEDI_TEST_SMTP_HOST"))
            .port(port)
            .build();
    smtp.send(mail).await.expect("SMTP delivery to the sink");

    let found = eventually(Duration::from_secs(5), "the mail file", || {
        let maildir = maildir.clone();
        let marker = marker.clone();
        async move {
            std::fs::read_dir(&maildir).ok()?.flatten().find_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                text.contains(&marker).then_some(text)
            })
        }
    })
    .await;
    assert!(found.contains("alice@example.org"), "{found}");
}
