//! Notification e-mails, end to end: actions through the api create notifications, the mails
//! they call for are written with them and a `fedi-server worker` sends them to the SMTP
//! sink. Mastodon's defaults (mentions and follows mailed, favourites not), a user's own
//! choice (set by the operator's `admin accounts notification-emails`), unconfirmed
//! addresses and blocked actors.

mod common;
#[path = "mail/sink.rs"]
mod sink;

use std::time::Duration;

use common::*;
use serde_json::Value;
use sink::{Mail, address, received, smtp_env};

const WAIT: Duration = Duration::from_secs(30);

struct Person {
    account_id: i64,
    email: String,
    token: String,
}

/// A user with a unique address, confirmed or not.
async fn person(api: &TestApi, name: &str, confirmed: bool) -> Person {
    let (account_id, user_id) = create_user(&api.db, name, "a long password").await;
    let email = address(name);
    let mut conn = api.conn().await;
    sqlx::query(
        "UPDATE users SET email = $2, \
                confirmed_at = CASE WHEN $3 THEN confirmed_at END WHERE id = $1",
    )
    .bind(user_id)
    .bind(&email)
    .bind(confirmed)
    .execute(&mut conn)
    .await
    .unwrap();
    let token = issue_token(&api.db, Some(user_id), "read write follow").await;
    Person {
        account_id,
        email,
        token,
    }
}

async fn post(api: &TestApi, who: &Person, text: &str) -> String {
    let reply = api
        .call(
            "POST",
            "/api/v1/statuses",
            Some(&who.token),
            Body::Form(&[("status", text)]),
        )
        .await
        .expect(200);
    reply.json()["id"].as_str().unwrap().to_string()
}

async fn act(api: &TestApi, who: &Person, path: &str) -> Value {
    api.call("POST", path, Some(&who.token), Body::None)
        .await
        .expect(200)
        .json()
}

/// Subjects of the mails written for `to`, oldest first.
async fn queued_subjects(api: &TestApi, to: &str) -> Vec<String> {
    let mut conn = api.conn().await;
    sqlx::query_scalar("SELECT subject FROM outgoing_mail WHERE to_address = $1 ORDER BY id")
        .bind(to)
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

async fn notifications_of(api: &TestApi, who: &Person, kind: &str) -> i64 {
    let mut conn = api.conn().await;
    sqlx::query_scalar("SELECT count(*) FROM notifications WHERE account_id = $1 AND type = $2")
        .bind(who.account_id)
        .bind(kind)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// `fedi-server admin accounts notification-emails <args>`: the types mailed afterwards.
fn notification_emails(api: &TestApi, args: &[&str]) -> Vec<String> {
    // The command needs no Redis; the configuration still requires the variable.
    let out = server_command(&api.db, "redis://unused.invalid")
        .args(["admin", "accounts", "notification-emails"])
        .args(args)
        .output()
        .expect("run fedi-server admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

async fn sent(to: &str, subject: &str) -> Mail {
    eventually(WAIT, &format!("a mail {subject:?} to {to}"), || async {
        received(to).into_iter().find(|m| m.subject == subject)
    })
    .await
}

#[tokio::test]
async fn mentions_and_follows_are_mailed_favourites_only_when_chosen() {
    let domain = unique_domain();
    let env = smtp_env(&domain);
    let api = TestApi::start_with(&env_refs(&env)).await;
    let _worker = start_worker(
        &api.db,
        &service_env("FEDI_TEST_REDIS_URL"),
        &env_refs(&env),
    );
    let alice = person(&api, "alice", true).await;
    let bob = person(&api, "bob", true).await;

    let mention = post(&api, &bob, "@alice are you coming tonight?").await;
    act(
        &api,
        &bob,
        &format!("/api/v1/accounts/{}/follow", alice.account_id),
    )
    .await;
    let mail = sent(&alice.email, "You were mentioned by bob").await;
    assert!(
        mail.body.contains("You were mentioned by bob in:"),
        "{mail:?}"
    );
    assert!(
        mail.body.contains("> @alice are you coming tonight?"),
        "{mail:?}"
    );
    assert!(
        mail.body.contains(&format!("{domain}/@bob/{mention}")),
        "{mail:?}"
    );
    let mail = sent(&alice.email, "bob is now following you").await;
    assert!(mail.body.contains("bob is now following you!"), "{mail:?}");
    assert!(mail.body.contains(&format!("{domain}/@bob")), "{mail:?}");

    // A favourite is notified but, by Mastodon's default, not mailed.
    let first = post(&api, &alice, "my first post").await;
    act(&api, &bob, &format!("/api/v1/statuses/{first}/favourite")).await;
    assert_eq!(notifications_of(&api, &alice, "favourite").await, 1);
    assert_eq!(
        queued_subjects(&api, &alice.email).await,
        ["You were mentioned by bob", "bob is now following you"]
    );

    // Once alice wants favourites mailed (the operator's command sets it), the next one is.
    assert_eq!(
        notification_emails(&api, &["alice", "--on", "favourite"]),
        ["favourite", "follow", "follow_request", "mention"]
    );
    let unknown = server_command(&api.db, "redis://unused.invalid")
        .args([
            "admin",
            "accounts",
            "notification-emails",
            "alice",
            "--on",
            "poll",
        ])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("invalid value 'poll'"));
    let second = post(&api, &alice, "my second post").await;
    act(&api, &bob, &format!("/api/v1/statuses/{second}/favourite")).await;
    let mail = sent(&alice.email, "bob favorited your post").await;
    assert!(
        mail.body
            .contains("Your post was favorited by bob:\n\n> my second post"),
        "{mail:?}"
    );
    assert!(mail.body.contains(&format!("/@alice/{second}")), "{mail:?}");
    // Mentions turned off: notified, not mailed.
    assert_eq!(
        notification_emails(&api, &["@alice", "--off", "mention", "--on", "reblog"]),
        ["favourite", "follow", "follow_request", "reblog"]
    );
    post(&api, &bob, "@alice one more thing").await;
    assert_eq!(notifications_of(&api, &alice, "mention").await, 2);
    assert_eq!(
        queued_subjects(&api, &alice.email).await,
        [
            "You were mentioned by bob",
            "bob is now following you",
            "bob favorited your post"
        ]
    );
}

#[tokio::test]
async fn unconfirmed_addresses_and_blocked_actors_get_no_mail() {
    let domain = unique_domain();
    let env = smtp_env(&domain);
    let api = TestApi::start_with(&env_refs(&env)).await;
    let _worker = start_worker(
        &api.db,
        &service_env("FEDI_TEST_REDIS_URL"),
        &env_refs(&env),
    );
    let carol = person(&api, "carol", false).await;
    let alice = person(&api, "alice", true).await;
    let bob = person(&api, "bob", true).await;
    let dave = person(&api, "dave", true).await;

    // carol has not confirmed her address: notified, not mailed.
    act(
        &api,
        &bob,
        &format!("/api/v1/accounts/{}/follow", carol.account_id),
    )
    .await;
    assert_eq!(notifications_of(&api, &carol, "follow").await, 1);
    assert!(queued_subjects(&api, &carol.email).await.is_empty());

    // alice blocked dave: his mention is no notification, and so no mail.
    act(
        &api,
        &alice,
        &format!("/api/v1/accounts/{}/block", dave.account_id),
    )
    .await;
    post(&api, &dave, "@alice hello?").await;
    post(&api, &bob, "@alice hi").await;
    sent(&alice.email, "You were mentioned by bob").await;
    assert_eq!(
        queued_subjects(&api, &alice.email).await,
        ["You were mentioned by bob"]
    );
    assert!(received(&carol.email).is_empty());
}
