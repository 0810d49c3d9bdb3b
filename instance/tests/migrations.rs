//! `fedi-server migrate` against a real PostgreSQL primary.

mod common;

use common::*;
use sqlx::Connection;

#[tokio::test]
async fn migrate_creates_the_schema_and_is_idempotent() {
    let db = fresh_database().await;
    for run in 0..2 {
        let out = server_command(&db, "redis://unused")
            .arg("migrate")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = String::from_utf8_lossy(&out.stdout);
        let total = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
            .unwrap()
            .count();
        let expected = if run == 0 {
            format!("applied={total}")
        } else {
            "applied=0".to_string()
        };
        assert!(
            log.contains(&expected),
            "run {run} should report {expected}: {log}"
        );
    }
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("INSERT INTO instance_settings (key, value) VALUES ('site.title', '\"Hi\"')")
        .execute(&mut conn)
        .await
        .expect("instance_settings exists after migrate");
    let long_key = "k".repeat(200);
    let err = sqlx::query("INSERT INTO instance_settings (key, value) VALUES ($1, 'null')")
        .bind(long_key)
        .execute(&mut conn)
        .await
        .expect_err("keys are bounded");
    assert!(err.to_string().contains("check constraint"), "{err}");
    // IDs are time-ordered: a later one is larger, and its high bits are milliseconds.
    let (a, b): (i64, i64) = sqlx::query_as("SELECT fedi_id(), fedi_id()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(b > a);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        ((a >> 16) - now_ms).abs() < 60_000,
        "{a} is not a timestamp id"
    );
}

#[tokio::test]
async fn migrate_against_an_unreachable_database_fails_clearly() {
    let url = format!("postgres://fedi:topsecret@127.0.0.1:{}/fedi", free_port());
    let out = server_command(&url, "redis://unused")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("cannot connect to the primary database"),
        "{all}"
    );
    assert!(!all.contains("topsecret"), "the password leaked: {all}");
}

#[tokio::test]
async fn a_separate_password_is_used_instead_of_the_one_in_the_url() {
    let db = fresh_database().await;
    let without_password = db.replacen(":fedi@", ":wrong@", 1);
    assert_ne!(
        db, without_password,
        "the test URL carries the password fedi"
    );
    let refused = server_command(&without_password, "redis://unused")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "the wrong password must be refused"
    );
    let out = server_command(&without_password, "redis://unused")
        .env("FEDI_DATABASE_PASSWORD", "fedi")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused_as_a_downgrade() {
    let db = migrated_database().await;
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    // What a later release would have recorded.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (29991231000000, 'from the future', true, '\\x00', 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let out = server_command(&db, "redis://unused")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("refusing to downgrade"), "{all}");
    assert!(all.contains("29991231000000"), "{all}");
}
