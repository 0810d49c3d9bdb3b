//! E-mail from `outgoing_mail` through SMTP, against the SMTP sink of the test services:
//! in-process (a failed attempt leaves the row for a retry, the retry sends once, a further
//! run sends nothing) and end to end (registration through the API, a `fedi-server worker`
//! process sending the confirmation; a duplicated job sends nothing more).

mod common;
#[path = "mail/sink.rs"]
mod sink;

use std::time::Duration;

use common::*;
use fedi_config::ServerConfig;
use fedi_server::jobs::{self, Queue};
use fedi_server::state::AppState;
use fedi_server::tasks::mail::{self, Delivered};
use sink::{address, received};

const WAIT: Duration = Duration::from_secs(30);

fn config(db: &str, domain: &str, smtp_port: &str) -> ServerConfig {
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let host = service_env("FEDI_TEST_SMTP_HOST");
    let vars = [
        ("FEDI_DOMAIN", domain),
        ("FEDI_DATABASE_URL", db),
        ("FEDI_REDIS_URL", redis.as_str()),
        ("FEDI_SMTP_HOST", host.as_str()),
        ("FEDI_SMTP_PORT", smtp_port),
        ("FEDI_SMTP_TLS", "none"),
        ("FEDI_SMTP_FROM", "notifications@test.example"),
    ];
    config_from(&vars)
}

async fn queue_mail(db: &str, to: &str, subject: &str) -> i64 {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    sqlx::query_scalar(
        "INSERT INTO outgoing_mail (to_address, subject, body_text) \
         VALUES ($1, $2, 'Confirm: https://test.example/auth/confirmation?t=secret') RETURNING id",
    )
    .bind(to)
    .bind(subject)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_mail_is_sent_once_across_a_failed_attempt_and_a_repeated_job() {
    let db = migrated_database().await;
    let to = address("retry");
    let id = queue_mail(&db, &to, "Please confirm").await;

    // Nothing listens on this port: the attempt fails, retryably, and the row stays.
    let domain = unique_domain();
    let down = AppState::new(&config(&db, &domain, &free_port().to_string())).unwrap();
    let err = mail::deliver(&down, id).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert!(received(&to).is_empty());

    let up = AppState::new(&config(&db, &domain, &service_env("FEDI_TEST_SMTP_PORT"))).unwrap();
    assert_eq!(mail::deliver(&up, id).await.unwrap(), Delivered::Sent);
    // The retried job, or a duplicate of it, finds the row sent.
    assert_eq!(mail::deliver(&up, id).await.unwrap(), Delivered::Nothing);
    let got = received(&to);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].subject.starts_with("Please confirm"), "{:?}", got[0]);
    assert!(
        got[0]
            .raw
            .contains(&format!("Message-ID: <mail-{id}@{domain}>"))
    );

    // Sent, and the one-time link it carried is not kept.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let (sent, body): (bool, String) =
        sqlx::query_as("SELECT sent_at IS NOT NULL, body_text FROM outgoing_mail WHERE id = $1")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(sent);
    assert_eq!(body, "");

    // An address no SMTP server can take fails for good and is recorded as such.
    let bad = queue_mail(&db, "not an address", "x").await;
    let err = mail::deliver(&up, bad).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    let (failed,): (bool,) =
        sqlx::query_as("SELECT failed_at IS NOT NULL FROM outgoing_mail WHERE id = $1")
            .bind(bad)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(failed);

    // The sweep queues rows whose job was lost (unsent after ten minutes), each once while
    // its job may still be retrying; sent and failed rows stay out.
    let lost = queue_mail(&db, &address("lost"), "lost").await;
    sqlx::query("UPDATE outgoing_mail SET created_at = now() - interval '11 minutes'")
        .execute(&mut conn)
        .await
        .unwrap();
    mail::sweep(&up).await.unwrap();
    mail::sweep(&up).await.unwrap();
    let client = redis::Client::open(service_env("FEDI_TEST_REDIS_URL")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let queued: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg(format!("{{fedi:jobs:{domain}:mailers}}:stream"))
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(format!("{queued:?}").contains(&format!("{lost}")));
}

#[tokio::test]
async fn registration_mail_reaches_the_sink_once_through_the_worker() {
    install_crypto_provider();
    let db = migrated_database().await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let host = service_env("FEDI_TEST_SMTP_HOST");
    let port = service_env("FEDI_TEST_SMTP_PORT");
    let domain = unique_domain();
    let smtp = [
        ("FEDI_DOMAIN", domain.as_str()),
        ("FEDI_SMTP_HOST", host.as_str()),
        ("FEDI_SMTP_PORT", port.as_str()),
        ("FEDI_SMTP_TLS", "none"),
        ("FEDI_SMTP_FROM", "notifications@test.example"),
    ];
    let api = start_api_with(&db, &redis, &smtp).await;
    let mut worker_env = smtp.to_vec();
    worker_env.push(("FEDI_WORKER_CONCURRENCY", "1"));
    let _worker = start_worker(&db, &redis, &worker_env);
    let app = issue_token(&db, None, "write:accounts").await;
    let to = address("newcomer");
    let reply = reqwest::Client::new()
        .post(format!("{}/api/v1/accounts", api.base_url))
        .bearer_auth(&app)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("username", "newcomer"),
                ("email", to.as_str()),
                ("password", "a long password 123"),
                ("agreement", "true"),
                ("locale", "en"),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "{}", reply.text().await.unwrap());

    let mail = eventually(WAIT, "the confirmation e-mail at the sink", || async {
        received(&to).pop()
    })
    .await;
    assert!(
        mail.body.contains(&format!("https://{domain}/")),
        "{mail:?}"
    );

    // The same delivery queued again (a job run twice) sends nothing more: once a later
    // mail, queued after it on the same one-job-at-a-time worker, has arrived, the
    // duplicate has run.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let (id,): (i64,) = sqlx::query_as("SELECT id FROM outgoing_mail WHERE to_address = $1")
        .bind(to.to_lowercase())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let state = AppState::new(&config(&db, &domain, &port)).unwrap();
    jobs::enqueue(
        &state,
        Queue::Mailers,
        mail::DELIVER,
        serde_json::json!({"id": id}),
    )
    .await
    .unwrap();
    let later = address("later");
    let later_id = queue_mail(&db, &later, "later").await;
    mail::enqueue(&state, later_id).await;
    eventually(WAIT, "the later e-mail", || async {
        (!received(&later).is_empty()).then_some(())
    })
    .await;
    assert_eq!(received(&to).len(), 1);
}
